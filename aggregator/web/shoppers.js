// The shoppers the map shows: latest position, state, zone and a short trail per visitor.
// Events are applied in batches (once per animation frame), never one DOM/canvas update per event.

export const TRAIL_POINTS = 6;          // positions kept per shopper for the fading trail
export const TRAIL_MAX_AGE_S = 30;      // older trail points are not drawn (a short trail, not a track)
export const EXIT_FADE_MS = 1500;       // an exited shopper fades out instead of vanishing
export const STALE_AFTER_S = 15 * 60;   // no news this long: drop (the aggregator exits them first)

export class Shopper {
  constructor(id, ts) {
    this.id = id;
    this.x = NaN; this.y = NaN;         // where the dot is drawn (eases towards tx, ty)
    this.tx = NaN; this.ty = NaN;       // the latest reported position
    this.state = "moving";
    this.zone = null;
    this.dep = null;
    this.customerId = null;
    this.device = "";
    this.enteredTs = ts;
    this.zoneSinceTs = ts;
    this.lastTs = ts;
    this.exitedAtMs = 0;
    this.offered = false;
    // Ring of trail points: x, y, ts.
    this.trailX = new Float32Array(TRAIL_POINTS);
    this.trailY = new Float32Array(TRAIL_POINTS);
    this.trailT = new Float64Array(TRAIL_POINTS);
    this.trailLen = 0;
    this.trailHead = 0;
  }

  pushTrail(x, y, ts) {
    this.trailX[this.trailHead] = x;
    this.trailY[this.trailHead] = y;
    this.trailT[this.trailHead] = ts;
    this.trailHead = (this.trailHead + 1) % TRAIL_POINTS;
    if (this.trailLen < TRAIL_POINTS) this.trailLen += 1;
  }

  /** Trail point k steps back from the newest (k = 0 is the newest). */
  trailAt(k) {
    const i = (this.trailHead - 1 - k + TRAIL_POINTS * 2) % TRAIL_POINTS;
    return i;
  }
}

export class ShopperStore {
  constructor() {
    this.byId = new Map();
    this.entersSeen = new Set();      // visitors who entered while the page was open (fallback counter)
    this.version = 0;                 // bumped on every change, so panels redraw only when needed
  }

  get size() {
    let n = 0;
    for (const s of this.byId.values()) if (!s.exitedAtMs) n += 1;
    return n;
  }

  /**
   * Apply a batch of ShopperEvent dicts (the /ws/movement frame format).
   * Returns the oldest event ts of the batch that touched a shopper (for lag measurement).
   */
  apply(events, nowMs) {
    for (const ev of events) this.applyOne(ev, nowMs);
    if (events.length) this.version += 1;
  }

  applyOne(ev, nowMs) {
    const type = ev.type;
    if (type !== "enter" && type !== "move" && type !== "browsing" && type !== "exit" && type !== "offer") return;
    const id = ev.visitor || ev.id;
    if (id === undefined || id === null || id === "") return;
    const key = String(id);
    const ts = Number(ev.ts) || nowMs / 1000;
    let s = this.byId.get(key);
    if (!s) {
      if (type === "exit") return;
      s = new Shopper(key, ts);
      this.byId.set(key, s);
    }
    if (type === "enter") {
      this.entersSeen.add(key);
      s.enteredTs = ts;
      s.exitedAtMs = 0;
      s.offered = false;   // a new visit starts without an offer
    }
    if (ev.customer_id !== undefined && ev.customer_id !== null && ev.customer_id !== "") {
      s.customerId = String(ev.customer_id);
    }
    if (ev.device) s.device = String(ev.device);
    if (Number.isFinite(ev.entered_ts)) s.enteredTs = ev.entered_ts;
    if (type === "exit") {
      s.exitedAtMs = nowMs;
      s.lastTs = ts;
      return;
    }
    if (type === "offer") {
      s.offered = true;
      s.state = "offered";
      return;
    }
    const x = Number(ev.x);
    const y = Number(ev.y);
    if (Number.isFinite(x) && Number.isFinite(y)) {
      if (!Number.isFinite(s.x)) { s.x = x; s.y = y; }
      s.tx = x; s.ty = y;
      s.pushTrail(x, y, ts);
    }
    const zone = ev.zone === undefined ? s.zone : (ev.zone || null);
    if (zone !== s.zone) { s.zone = zone; s.zoneSinceTs = ts; }
    if (ev.dep) s.dep = ev.dep;
    // The aggregator says moving or browsing; a shopper who got an offer keeps the offer colour
    // for the rest of the visit (that is what staff look for), whatever they do next.
    if (s.offered) s.state = "offered";
    else if (ev.state) s.state = ev.state;
    else s.state = type === "browsing" ? "browsing" : "moving";
    s.lastTs = ts;
  }

  /** Forget shoppers that have faded out or went silent; returns true when any was removed. */
  sweep(nowMs) {
    let removed = false;
    const nowS = nowMs / 1000;
    for (const [id, s] of this.byId) {
      if ((s.exitedAtMs && nowMs - s.exitedAtMs > EXIT_FADE_MS) || nowS - s.lastTs > STALE_AFTER_S) {
        this.byId.delete(id);
        removed = true;
      }
    }
    if (removed) this.version += 1;
    return removed;
  }

  /** Shoppers linked to this loyalty customer id. */
  ofCustomer(customerId) {
    const out = [];
    for (const s of this.byId.values()) if (s.customerId === customerId || s.id === customerId) out.push(s);
    return out;
  }
}
