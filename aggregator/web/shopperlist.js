// The shoppers on the plan as a list beside it, for keyboard and screen-reader users: a listbox
// with one tab stop; the arrow keys, Home and End move through it and the details panel follows
// (the same details as clicking a dot). Rows are keyed by shopper, so a refresh changes only the
// rows whose text changed, and the list is rebuilt at most every REFRESH_MS.

import {el} from "./dom.js";

const REFRESH_MS = 500;
const MOVE_KEYS = {ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10};

export class ShopperList {
  /**
   * @param {HTMLElement} list a <ul role="listbox">
   * @param {import("./shoppers.js").ShopperStore} shoppers
   * @param {(s) => string} labelOf the row's text for a shopper
   * @param {(id: string|null) => void} onSelect
   */
  constructor(list, shoppers, labelOf, onSelect) {
    this.list = list;
    this.shoppers = shoppers;
    this.labelOf = labelOf;
    this.onSelect = onSelect;
    this.rows = new Map();     // shopper id -> <li role="option">
    this.order = [];           // shopper ids in display order
    this.selectedId = null;
    this.lastMs = 0;
    this.version = -1;
    this.nextDomId = 0;
    list.addEventListener("keydown", (e) => this.onKey(e));
    list.addEventListener("click", (e) => {
      const row = e.target.closest('[role="option"]');
      if (row) this.choose(row.dataset.id);
    });
    list.addEventListener("focus", () => this.markActive());
  }

  /** Redraw when shoppers changed (called every few frames; cheap when nothing did). */
  update(nowMs, selectedId) {
    const selectionChanged = selectedId !== this.selectedId;
    this.selectedId = selectedId;
    if (this.version !== this.shoppers.version && nowMs - this.lastMs >= REFRESH_MS) {
      this.lastMs = nowMs;
      this.version = this.shoppers.version;
      this.render();
    } else if (selectionChanged) {
      this.markActive();
    }
  }

  render() {
    const present = [];
    for (const s of this.shoppers.byId.values()) {
      if (!s.exitedAtMs && Number.isFinite(s.tx)) present.push({id: s.id, label: this.labelOf(s)});
    }
    present.sort((a, b) => a.label.localeCompare(b.label) || a.id.localeCompare(b.id));
    const keep = new Set(present.map((p) => p.id));
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) { row.remove(); this.rows.delete(id); }
    }
    const order = present.map((p) => p.id);
    for (const {id, label} of present) {
      let row = this.rows.get(id);
      if (!row) {
        row = el("li", {role: "option", id: `shopper-opt-${this.nextDomId++}`, class: "shopper-row",
          "aria-selected": "false", dataset: {id}});
        this.rows.set(id, row);
      }
      if (row.textContent !== label) row.textContent = label;
    }
    if (order.length !== this.order.length || order.some((id, i) => id !== this.order[i])) {
      this.list.replaceChildren(...order.map((id) => this.rows.get(id)));
    }
    this.order = order;
    this.markActive();
  }

  /** aria-selected on the selected row, and the listbox's active descendant. */
  markActive() {
    for (const [id, row] of this.rows) {
      const on = id === this.selectedId;
      if ((row.getAttribute("aria-selected") === "true") !== on) row.setAttribute("aria-selected", String(on));
    }
    const row = this.selectedId && this.rows.get(this.selectedId);
    if (row) {
      this.list.setAttribute("aria-activedescendant", row.id);
      if (document.activeElement === this.list) row.scrollIntoView({block: "nearest"});
    } else {
      this.list.removeAttribute("aria-activedescendant");
    }
  }

  choose(id) {
    this.selectedId = id;
    this.onSelect(id);
    this.markActive();
  }

  onKey(e) {
    if (!this.order.length) return;
    const i = this.order.indexOf(this.selectedId);
    let j = null;
    if (e.key in MOVE_KEYS) j = i < 0 ? 0 : i + MOVE_KEYS[e.key];
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = this.order.length - 1;
    else if ((e.key === "Enter" || e.key === " ") && i < 0) j = 0;
    else if (e.key === "Escape") { e.preventDefault(); this.choose(null); return; }
    if (j === null) return;
    e.preventDefault();
    this.choose(this.order[Math.max(0, Math.min(this.order.length - 1, j))]);
  }
}
