// The "Create customer scenario" tab (the retail demo UI's second tab): pick a customer and a pin type,
// click pins on the plan, choose the step time and start. The server frames the visit
// (entrance ... exit), expands focus pins and fills long gaps; the mock agents play it.

import {HttpError, postJSON} from "./api.js";
import {$, el, fill} from "./dom.js";
import {PlanView} from "./planview.js";

const PIN_COLOURS = {movement: "#1c7ed6", focus: "#f08c00"};

export class ScenarioTab {
  constructor(store, customers, onStarted) {
    this.store = store;
    this.customers = customers;
    this.onStarted = onStarted;
    this.pins = [];
    this.played = null;  // the path the server answered with
    this.view = null;
  }

  /** Build the plan view lazily: the tab is hidden at start and has no size yet. */
  show() {
    if (!this.view) {
      this.view = new PlanView($("scn-map"), this.store, ["pins"]);
      this.view.onResize.push(() => this.drawPins());
      this.view.canvases.pins.addEventListener("click", (e) => this.addPin(e));
      this.wire();
      if (this.background) this.setBackground(this.background);
    }
    this.view.resize();
    this.drawPins();
  }

  setBackground(bitmap) {
    this.background = bitmap;
    if (this.view) {
      this.view.background = bitmap;
      this.view.drawBase();
    }
  }

  wire() {
    const select = $("scn-customer");
    const options = [...this.customers.values()].map((c) => {
      const id = String(c.customer_id ?? c.id);
      return el("option", {value: id, text: `${c.name ?? id} (#${id})`});
    });
    fill(select, options);
    const step = $("scn-step");
    const stepOut = $("scn-step-value");
    step.addEventListener("input", () => { stepOut.textContent = `${step.value} s`; });
    stepOut.textContent = `${step.value} s`;
    $("scn-undo").addEventListener("click", () => { this.pins.pop(); this.played = null; this.refresh(); });
    $("scn-clear").addEventListener("click", () => { this.pins = []; this.played = null; this.refresh(); });
    $("scn-start").addEventListener("click", () => this.start());
    this.refresh();
  }

  pinType() {
    const checked = document.querySelector("input[name=scn-pin]:checked");
    return checked ? checked.value : "movement";
  }

  addPin(e) {
    const p = this.view.clientToPlan(e.clientX, e.clientY);
    if (p.x < 0 || p.y < 0 || p.x > this.store.width_px || p.y > this.store.height_px) return;
    this.pins.push({type: this.pinType(), x: Math.round(p.x), y: Math.round(p.y)});
    this.played = null;
    this.refresh();
  }

  refresh() {
    const list = $("scn-pins");
    fill(list, this.pins.map((p, i) => el("li", null,
      el("span", {class: `pin-dot pin-${p.type}`}),
      `${i + 1}. ${p.type} at (${p.x}, ${p.y}) `,
      el("button", {type: "button", class: "link", text: "remove", title: "remove this pin",
        onclick: () => { this.pins.splice(i, 1); this.played = null; this.refresh(); }}))));
    $("scn-start").disabled = this.pins.length === 0;
    this.drawPins();
  }

  drawPins() {
    if (!this.view) return;
    const view = this.view;
    const ctx = view.clear("pins");
    const route = [this.store.entrance, ...this.pins, this.store.exit];
    ctx.setLineDash([view.px(6), view.px(5)]);
    ctx.strokeStyle = "rgba(33, 37, 41, 0.6)";
    ctx.lineWidth = view.px(2);
    ctx.beginPath();
    route.forEach((p, i) => (i ? ctx.lineTo(p.x, p.y) : ctx.moveTo(p.x, p.y)));
    ctx.stroke();
    ctx.setLineDash([]);
    if (this.played) {  // the interpolated points the agents will play
      ctx.fillStyle = "rgba(33, 37, 41, 0.55)";
      for (const p of this.played) {
        ctx.beginPath();
        ctx.arc(p.x, p.y, view.px(3), 0, Math.PI * 2);
        ctx.fill();
      }
    }
    this.pins.forEach((p, i) => {
      const r = view.px(p.type === "focus" ? 11 : 9);
      ctx.fillStyle = PIN_COLOURS[p.type];
      ctx.beginPath();
      ctx.arc(p.x, p.y, r, 0, Math.PI * 2);
      ctx.fill();
      if (p.type === "focus") {
        ctx.strokeStyle = PIN_COLOURS.focus;
        ctx.lineWidth = view.px(2);
        ctx.beginPath();
        ctx.arc(p.x, p.y, r * 1.7, 0, Math.PI * 2);
        ctx.stroke();
      }
      ctx.fillStyle = "#fff";
      ctx.font = `700 ${view.px(11)}px system-ui, sans-serif`;
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText(String(i + 1), p.x, p.y);
    });
  }

  async start() {
    const out = $("scn-result");
    const customerId = $("scn-customer").value;
    const body = {customer_id: customerId, step_s: Number($("scn-step").value), pins: this.pins};
    $("scn-start").disabled = true;
    out.className = "result";
    out.textContent = "Sending…";
    try {
      const res = await postJSON("/api/new_scenario", body);
      this.played = res.path || null;
      this.drawPins();
      out.className = "result ok";
      fill(out, `Playing ${res.points} points for customer #${res.customer_id}, about ${Math.round(res.duration_s)} s. `,
        el("button", {type: "button", class: "link", id: "scn-watch", text: "Watch on the map",
          onclick: () => this.onStarted(res.customer_id)}));
    } catch (err) {
      out.className = "result error";
      const field = err instanceof HttpError && err.body && err.body.param ? `${err.body.param}: ` : "";
      out.textContent = `Not started: ${field}${err.message}`;
    } finally {
      $("scn-start").disabled = this.pins.length === 0;
    }
  }
}
