// The events log: every event kept in a bounded ring, the visible list rebuilt only from what
// passes the filters, and at most a few rows added per animation frame (moves arrive by the
// thousand per second; the log must not be what slows the map down).

import {clockTime, el, fill} from "./dom.js";

export const LOG_TYPES = ["enter", "move", "exit", "browsing", "offer", "agent", "sensor"];
const RING_SIZE = 2000;
const VISIBLE_ROWS = 200;
const ROWS_PER_FRAME = 25;

function typeOf(ev) {
  if (ev.type === "door" || ev.type === "motion") return "sensor";
  return ev.type;
}

export class EventLog {
  /**
   * @param {HTMLElement} list the <ol> to fill
   * @param {(ev: object) => string} whoOf display name of an event's shopper
   */
  constructor(list, whoOf) {
    this.list = list;
    this.whoOf = whoOf;
    this.ring = [];
    this.filters = new Set(LOG_TYPES.filter((t) => t !== "move"));
    this.onlyId = null;         // show only this visitor's events
    this.pending = [];
    this.skipped = 0;
    this.agentStates = new Map();   // agents report health every 30 s: log only up/down changes
  }

  accepts(entry) {
    return this.filters.has(entry.type) && (!this.onlyId || entry.id === this.onlyId);
  }

  add(events) {
    for (const ev of events) {
      const type = typeOf(ev);
      if (!LOG_TYPES.includes(type)) continue;
      if (type === "agent") {
        if (this.agentStates.get(ev.agent) === ev.state) continue;
        this.agentStates.set(ev.agent, ev.state);
      }
      const entry = {type, ts: Number(ev.ts) || Date.now() / 1000, id: String(ev.visitor || ev.id || ev.agent || ""), ev};
      this.ring.push(entry);
      if (this.accepts(entry)) this.pending.push(entry);
    }
    if (this.ring.length > RING_SIZE * 1.25) this.ring.splice(0, this.ring.length - RING_SIZE);
  }

  describe(entry) {
    const ev = entry.ev;
    const who = this.whoOf(ev);
    switch (entry.type) {
      case "enter": return [who, "entered the store"];
      case "exit": return [who, "left the store"];
      case "move": return [who, `moved to ${ev.zone || "the aisles"} (${Math.round(ev.x)}, ${Math.round(ev.y)})`];
      case "browsing": return [who, `is browsing in ${ev.zone || ev.dep || "?"}`];
      case "offer": {
        const c = (ev.prediction && ev.prediction.coupon) || {};
        const what = c.department ? `${c.discount}% off ${c.department}` : (ev.offer || "an offer");
        return [who, `was offered ${what}`];
      }
      case "agent": {
        const what = {offline: "went offline", online: "is online"}[ev.state] || `is ${ev.state || "unknown"}`;
        return [String(ev.agent || ev.id || "agent"), what];
      }
      case "sensor":
        if (ev.type === "door") return [String(ev.sensor || "door"), `someone went ${ev.direction === "out" ? "out" : "in"}`];
        return [String(ev.sensor || "PIR"), `${ev.active === false ? "quiet" : "motion"} in ${ev.zone || "?"}`];
      default: return [who, entry.type];
    }
  }

  row(entry) {
    const [who, what] = this.describe(entry);
    return el("li", {class: `log-row log-${entry.type}`, dataset: {type: entry.type, id: entry.id}},
      el("time", {text: clockTime(entry.ts)}),
      el("span", {class: `badge badge-${entry.type}`, text: entry.type}),
      el("b", {class: "who", text: who}),
      el("span", {class: "what", text: ` ${what}`}));
  }

  /** Called once per frame: add the newest pending rows, keep the list short. */
  flush() {
    if (!this.pending.length) return;
    let batch = this.pending;
    this.pending = [];
    if (batch.length > ROWS_PER_FRAME) {
      this.skipped += batch.length - ROWS_PER_FRAME;
      batch = batch.slice(-ROWS_PER_FRAME);
    }
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) frag.appendChild(this.row(batch[i]));
    this.list.prepend(frag);
    while (this.list.childElementCount > VISIBLE_ROWS) this.list.lastElementChild.remove();
    const note = document.getElementById("log-skipped");
    if (note) note.textContent = this.skipped ? `${this.skipped} rows skipped to keep up` : "";
  }

  /** Rebuild the visible list after a filter change. */
  rebuild() {
    this.pending = [];
    const rows = [];
    for (let i = this.ring.length - 1; i >= 0 && rows.length < VISIBLE_ROWS; i--) {
      if (this.accepts(this.ring[i])) rows.push(this.row(this.ring[i]));
    }
    fill(this.list, rows);
  }

  setFilter(type, on) {
    if (on) this.filters.add(type); else this.filters.delete(type);
    this.rebuild();
  }

  setOnly(id) {
    this.onlyId = id;
    this.rebuild();
  }
}
