// A shopper's phone: the offers this customer received, newest first, live.
// The customer id comes from the URL path; it is only ever shown through textContent.

import {getAll, getJSON, indexCustomers, segmentOf} from "./api.js";
import {$, setText} from "./dom.js";
import {couponCard, couponKey, customerIdOf, offersFrom, predictionOf} from "./offers.js";
import {LiveSocket} from "./ws.js";

const fw = {ready: false, errors: [], offers: 0};
window.__fw = fw;
window.addEventListener("error", (e) => fw.errors.push(String(e.message)));

const parts = window.location.pathname.split("/").filter(Boolean);
const customerId = decodeURIComponent(parts[parts.length - 1] || "");
const seen = new Set();

function add(item, fresh) {
  const p = predictionOf(item);
  if (!p || customerIdOf(p) !== customerId) return;
  const key = couponKey(p);
  if (seen.has(key)) return;
  seen.add(key);
  const empty = $("phone-empty");
  if (empty) empty.remove();
  const card = couponCard(p, "");
  if (fresh) card.classList.add("fresh");
  $("phone-offers").prepend(card);
  fw.offers = seen.size;
  setText("phone-count", seen.size);
}

async function main() {
  const store = await getJSON("/api/store");
  const endpoints = store.endpoints || {};
  const customers = indexCustomers(endpoints.customers ? await getAll("/api/customers") : []);
  const me = customers.get(customerId);
  setText("phone-name", me && me.name ? String(me.name) : `customer #${customerId}`);
  setText("phone-segment", me ? segmentOf(me) : "");
  document.title = `${me && me.name ? me.name : customerId} · offers`;
  const conn = $("phone-conn");
  new LiveSocket("/ws/coupons", (data) => {
    for (const p of Array.isArray(data) ? data : [data]) add(p, true);
  }, (state) => {
    conn.textContent = state === "open" ? "live" : "reconnecting…";
    conn.className = `conn conn-${state}`;
  });
  const past = endpoints.offers
    ? offersFrom(await getJSON(`/api/offers?customer_id=${encodeURIComponent(customerId)}`)) : [];
  // Oldest first, so the newest ends up on top.
  past.sort((a, b) => Number((predictionOf(a) || {}).ts || 0) - Number((predictionOf(b) || {}).ts || 0));
  for (const item of past) add(item, false);
  fw.ready = true;
}

main().catch((err) => {
  fw.errors.push(String(err));
  console.error(err);
});
