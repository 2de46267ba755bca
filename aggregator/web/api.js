// HTTP and WebSocket addresses of the aggregator. Behind an API token the browser carries the
// session cookie set by the login page (HttpOnly: no script sees it); no token is ever put in a
// URL. An answer of 401 means the session ended: back to the login page, then here again.

/** The login page, returning to where the user is now. */
export function loginURL() {
  const here = window.location.pathname + window.location.search;
  return `/login?${new URLSearchParams({next: here})}`;
}

function toLogin() {
  window.location.assign(loginURL());
}

function headers(extra) {
  return Object.assign({Accept: "application/json"}, extra || {});
}

export class HttpError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function parse(resp) {
  let body = null;
  const type = resp.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try { body = await resp.json(); } catch { body = null; }
  }
  if (resp.status === 401) toLogin();
  if (!resp.ok) throw new HttpError(resp.status, body);
  return body;
}

export async function getJSON(path) {
  return parse(await fetch(path, {headers: headers(), cache: "no-store"}));
}

/** Every item of a paged list endpoint ({items, total, limit, offset}), up to `max` items. */
export async function getAll(path, max = 20000) {
  const items = [];
  const sep = path.includes("?") ? "&" : "?";
  for (let offset = 0; offset < max;) {
    const page = await getJSON(`${path}${sep}limit=1000&offset=${offset}`);
    const got = itemsOf(page);
    items.push(...got);
    offset += got.length;
    if (!got.length || !page || typeof page.total !== "number" || offset >= page.total) break;
  }
  return items;
}

export async function postJSON(path, body) {
  return parse(await fetch(path, {
    method: "POST", headers: headers({"Content-Type": "application/json"}), body: JSON.stringify(body),
  }));
}

/** A protected image as an ImageBitmap (an <img> could not send the Authorization header). */
export async function getImage(path) {
  const resp = await fetch(path, {headers: headers({Accept: "image/*"})});
  if (resp.status === 401) toLogin();
  if (!resp.ok) throw new HttpError(resp.status, null);
  return createImageBitmap(await resp.blob());
}

export function wsURL(path) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

/** How this page got in ({login_required, via, expires_ts}); a 401 goes to the login page. */
export async function session() {
  return getJSON("/api/session");
}

/** Show the sign-out form (a POST, so no other site can sign the user out) when there is a session. */
export async function offerLogout(form) {
  try {
    const s = await session();
    form.hidden = s.via !== "cookie";
  } catch (err) {
    form.hidden = true;
  }
}

/** The list inside an API answer: a bare list, or the core's {items: [...]} envelope. */
export function itemsOf(payload) {
  if (Array.isArray(payload)) return payload;
  if (!payload || typeof payload !== "object") return [];
  for (const key of ["items", "customers", "offers", "rows", "agents", "positions"]) {
    if (Array.isArray(payload[key])) return payload[key];
  }
  return [];
}

/** Customers come as a list or an envelope; index them by string id. */
export function indexCustomers(payload) {
  const list = itemsOf(payload);
  const byId = new Map();
  for (const c of list) {
    const id = c.customer_id ?? c.id;
    if (id !== undefined && id !== null) byId.set(String(id), c);
  }
  return byId;
}

/** "F, 25" style segment, or the customer's own segment field when the API provides one. */
export function segmentOf(customer) {
  if (!customer) return "";
  if (customer.segment) return String(customer.segment);
  const gender = {F: "female", M: "male"}[customer.gender] || customer.gender || "";
  const age = customer.age !== undefined && customer.age !== null ? `${customer.age}` : "";
  return [gender, age && `age ${age}`].filter(Boolean).join(", ");
}
