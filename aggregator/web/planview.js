// The store plan on stacked canvases: a base layer (picture or zones, doors, sensors) redrawn
// only when something static changes, and overlay layers the callers draw on every frame.
// All drawing is in plan pixels; the view maps them to CSS pixels and device pixels.

export const SENSOR_COLOURS = {online: "#2b8a3e", offline: "#c92a2a", unknown: "#6c757d"};
const ZONE_FILLS = ["#e7f5ff", "#fff4e6", "#f3f0ff", "#ebfbee", "#fff0f6", "#e3fafc", "#fff9db"];

export class PlanView {
  /**
   * @param {HTMLElement} container an empty element; canvases are created inside it
   * @param {object} store the /api/store document
   * @param {string[]} layers names of the overlay canvases, bottom to top
   */
  constructor(container, store, layers) {
    this.container = container;
    this.store = store;
    this.width = store.width_px;
    this.height = store.height_px;
    this.background = null;       // ImageBitmap, when the store has a picture
    this.agentState = new Map();  // agent id -> "online" | "offline"
    this.scale = 1;
    this.dpr = window.devicePixelRatio || 1;
    this.canvases = {};
    for (const name of ["base", ...layers]) {
      const c = document.createElement("canvas");
      c.className = `layer layer-${name}`;
      c.dataset.layer = name;
      container.appendChild(c);
      this.canvases[name] = c;
    }
    this.onResize = [];
    // Deferred to the next frame: resize() sets the container's height, which would otherwise
    // re-trigger the observer within the same notification ("ResizeObserver loop" error).
    this.observer = new ResizeObserver(() => requestAnimationFrame(() => this.resize()));
    this.observer.observe(container);
    this.resize();
  }

  resize() {
    const box = this.container.getBoundingClientRect();
    const availW = Math.max(200, box.width);
    const availH = Math.max(150, window.innerHeight - box.top - 16);
    const scale = Math.min(availW / this.width, availH / this.height);
    if (Math.abs(scale - this.scale) < 1e-4 && this.sized) return;
    this.scale = scale;
    this.sized = true;
    this.dpr = window.devicePixelRatio || 1;
    const cssW = Math.round(this.width * scale);
    const cssH = Math.round(this.height * scale);
    this.container.style.height = `${cssH}px`;
    for (const c of Object.values(this.canvases)) {
      c.style.width = `${cssW}px`;
      c.style.height = `${cssH}px`;
      c.width = Math.round(cssW * this.dpr);
      c.height = Math.round(cssH * this.dpr);
    }
    this.drawBase();
    for (const fn of this.onResize) fn();
  }

  /** A 2D context of `layer` with the plan-pixel transform set. */
  ctx(layer) {
    const ctx = this.canvases[layer].getContext("2d");
    const k = this.scale * this.dpr;
    ctx.setTransform(k, 0, 0, k, 0, 0);
    return ctx;
  }

  clear(layer) {
    const c = this.canvases[layer];
    const ctx = c.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, c.width, c.height);
    return this.ctx(layer);
  }

  /** Plan pixels from a mouse event's client coordinates. */
  clientToPlan(clientX, clientY) {
    const r = this.canvases.base.getBoundingClientRect();
    return {x: (clientX - r.left) / this.scale, y: (clientY - r.top) / this.scale};
  }

  /** Client (viewport) coordinates of a plan point: what a test clicks on. */
  planToClient(x, y) {
    const r = this.canvases.base.getBoundingClientRect();
    return {x: r.left + x * this.scale, y: r.top + y * this.scale};
  }

  /** A length of `cssPx` screen pixels in plan pixels (markers keep their size at any zoom). */
  px(cssPx) {
    return cssPx / this.scale;
  }

  drawBase() {
    const ctx = this.clear("base");
    const s = this.store;
    if (this.background) {
      ctx.drawImage(this.background, 0, 0, this.width, this.height);
    } else {
      ctx.fillStyle = "#f8f9fa";
      ctx.fillRect(0, 0, this.width, this.height);
      ctx.strokeStyle = "#adb5bd";
      ctx.lineWidth = this.px(2);
      ctx.strokeRect(0, 0, this.width, this.height);
    }
    // Zones: filled and named when there is no picture; outlined on top of a picture.
    s.zones.forEach((z, i) => {
      ctx.beginPath();
      z.polygon.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath();
      if (!this.background) {
        ctx.fillStyle = ZONE_FILLS[i % ZONE_FILLS.length];
        ctx.fill();
        ctx.strokeStyle = "#495057";
        ctx.lineWidth = this.px(1.5);
        ctx.setLineDash([]);
      } else {
        ctx.strokeStyle = "rgba(73, 80, 87, 0.55)";
        ctx.lineWidth = this.px(1.5);
        ctx.setLineDash([this.px(6), this.px(4)]);
      }
      ctx.stroke();
      ctx.setLineDash([]);
      if (!this.background) {
        const cx = z.polygon.reduce((a, p) => a + p[0], 0) / z.polygon.length;
        const cy = z.polygon.reduce((a, p) => a + p[1], 0) / z.polygon.length;
        ctx.fillStyle = "#343a40";
        ctx.font = `600 ${this.px(14)}px system-ui, sans-serif`;
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(z.name, cx, cy);
        ctx.font = `${this.px(11)}px system-ui, sans-serif`;
        ctx.fillStyle = "#868e96";
        ctx.fillText(z.category, cx, cy + this.px(16));
      }
    });
    this.drawDoor(s.entrance, "Entrance", "#2f9e44");
    this.drawDoor(s.exit, "Exit", "#e8590c");
    for (const sensor of s.sensors || []) this.drawSensor(sensor);
  }

  drawDoor(p, label, colour) {
    if (!p) return;
    const ctx = this.ctx("base");
    const r = this.px(9);
    ctx.fillStyle = colour;
    ctx.beginPath();
    ctx.moveTo(p.x - r, p.y - r);
    ctx.lineTo(p.x + r, p.y - r);
    ctx.lineTo(p.x, p.y + r);
    ctx.closePath();
    ctx.fill();
    ctx.font = `600 ${this.px(12)}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    // Above the marker, unless that would leave the plan (doors are often on its top edge).
    const above = p.y - r - this.px(16) >= 0;
    ctx.textBaseline = above ? "bottom" : "top";
    const ty = above ? p.y - r - this.px(2) : p.y + r + this.px(2);
    ctx.lineWidth = this.px(3);
    ctx.strokeStyle = "rgba(255,255,255,0.9)";
    ctx.strokeText(label, p.x, ty);
    ctx.fillStyle = colour;
    ctx.fillText(label, p.x, ty);
  }

  /** A sensor's kind by its shape (diamond radio, ring PIR, bar door beams) and its agent's state
   * by colour and by mark alike, so no one needs to tell red from green: online is filled,
   * offline is crossed out, unknown (not heard yet) is hollow. */
  drawSensor(sensor) {
    const ctx = this.ctx("base");
    const r = this.px(6);
    const {x, y} = sensor;
    const state = this.agentState.get(sensor.agent) || "unknown";
    const dx = sensor.kind === "door" ? this.px(14) : 0;
    ctx.beginPath();
    if (sensor.kind === "sniffer") {
      ctx.moveTo(x, y - r); ctx.lineTo(x + r, y); ctx.lineTo(x, y + r); ctx.lineTo(x - r, y);
      ctx.closePath();
    } else if (sensor.kind === "pir") {
      ctx.arc(x, y, r * 0.8, 0, Math.PI * 2);
    } else {
      ctx.rect(x - r + dx, y - r * 0.6, r * 2, r * 1.2);
    }
    if (state === "unknown") {
      ctx.fillStyle = "#fff";
      ctx.fill();
      ctx.strokeStyle = SENSOR_COLOURS.unknown;
      ctx.lineWidth = this.px(2);
      ctx.stroke();
      return;
    }
    ctx.fillStyle = SENSOR_COLOURS[state];
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = this.px(1.5);
    ctx.fill();
    ctx.stroke();
    if (state === "offline") this.drawCross(ctx, x + dx, y, r * 1.25);
  }

  drawCross(ctx, x, y, r) {
    ctx.beginPath();
    ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r);
    ctx.moveTo(x + r, y - r); ctx.lineTo(x - r, y + r);
    ctx.lineCap = "round";
    ctx.strokeStyle = "#212529";
    ctx.lineWidth = this.px(3.5);
    ctx.stroke();
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = this.px(1.5);
    ctx.stroke();
    ctx.lineCap = "butt";
  }

  /** Which sensor (if any) is under a plan point: for tooltips. */
  sensorAt(x, y) {
    const r = this.px(10);
    for (const s of this.store.sensors || []) {
      const dx = s.kind === "door" ? this.px(14) : 0;
      if (Math.hypot(s.x + dx - x, s.y - y) <= r) return s;
    }
    return null;
  }
}
