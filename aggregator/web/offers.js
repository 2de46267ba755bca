// Coupons as cards (the map's offers panel and the phone view share them) and the offer
// state-machine log. Predictions have the retail demo's shape: {customer: {id}, coupon: {...}, ts}.

import {itemsOf} from "./api.js";
import {clockTime, el, fill, money} from "./dom.js";

/** The list of predictions in whatever envelope the API uses. */
export function offersFrom(payload) {
  return itemsOf(payload);
}

/** A prediction from an offer row that may wrap it ({prediction: {...}}) or be it. */
export function predictionOf(item) {
  if (!item || typeof item !== "object") return null;
  if (item.prediction && item.prediction.coupon) return item.prediction;
  if (item.coupon) return item;
  return null;
}

export function customerIdOf(prediction) {
  const c = prediction && prediction.customer;
  if (!c) return "";
  return String(c.id ?? c.customer_id ?? "");
}

export function couponKey(prediction) {
  const c = prediction.coupon || {};
  return `${customerIdOf(prediction)}|${c.id}|${prediction.ts}`;
}

/** One coupon: department, discount, how many to buy, the products with their prices. */
export function couponCard(prediction, customerName) {
  const c = prediction.coupon || {};
  const howMany = c.how_many ?? c.how_many_products_required;
  const kinds = {buy_all: "Buy all of these", buy_more: "Buy more, save more", just_discount: "Discount"};
  const kind = kinds[c.type] || (c.type ? String(c.type).replace(/_/g, " ") : "Offer");
  const products = Array.isArray(c.products) ? c.products : [];
  return el("article", {class: "coupon", dataset: {customer: customerIdOf(prediction), coupon: String(c.id ?? "")}},
    el("header", null,
      el("span", {class: "coupon-discount", text: `${Number(c.discount ?? 0)}% off`}),
      el("span", {class: "coupon-dep", text: String(c.department ?? "")})),
    customerName ? el("p", {class: "coupon-who", text: customerName}) : null,
    el("p", {class: "coupon-kind"},
      kind,
      howMany !== undefined && howMany !== null ? el("span", {class: "coupon-howmany", text: ` · buy ${howMany}`}) : null),
    el("ul", {class: "coupon-products"},
      products.map((p) => el("li", null,
        el("span", {class: "product-name", text: String(p.name ?? "")}),
        el("span", {class: "product-price", text: `$${money(p.buy_price ?? p.price)}`})))),
    el("footer", null,
      c.end_date ? `valid until ${c.end_date}` : "",
      prediction.ts ? el("time", {text: clockTime(Number(prediction.ts))}) : null));
}

/** The offer state machine log (GET /api/offers/log), in whatever row shape the offers module uses. */
export function renderOfferLog(list, payload) {
  const rows = Array.isArray(payload) ? payload : (payload && (payload.log || payload.entries)) || itemsOf(payload);
  const items = [];
  for (let i = rows.length - 1; i >= 0 && items.length < 300; i--) {
    const r = rows[i];
    if (typeof r === "string") {
      items.push(el("li", {class: "offerlog-row", text: r}));
      continue;
    }
    const text = r.line ?? r.text ?? r.message ?? JSON.stringify(r);
    items.push(el("li", {class: "offerlog-row"},
      r.ts ? el("time", {text: clockTime(Number(r.ts))}) : null,
      el("span", {text: String(text)})));
  }
  if (!items.length) items.push(el("li", {class: "empty", text: "No offer state changes yet."}));
  fill(list, items);
}
