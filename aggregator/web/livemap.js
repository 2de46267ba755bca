// The moving part of the map: dots with fading trails, drawn once per animation frame.
// Everything of one colour and one trail age is one canvas path, so 500 shoppers cost a few
// dozen strokes per frame rather than thousands.

import {EXIT_FADE_MS, TRAIL_MAX_AGE_S} from "./shoppers.js";

export const STATE_COLOURS = {moving: "#1c7ed6", browsing: "#f08c00", offered: "#d6336c"};
const STATES = Object.keys(STATE_COLOURS);
const EASE_MS = 250;      // a dot glides to its new position instead of jumping
const DOT_CSS_PX = 5;     // dot radius on screen
const HIT_CSS_PX = 12;    // how close a click must be to pick a dot
const AGE_BUCKETS = 4;    // trail opacity steps
const LABEL_MAX_CHARS = 32;
const MAX_TRAIL_STEP_M = 8;  // a longer step between two fixes is a positioning jump: not drawn as a trail

export class LiveMap {
  constructor(view, shoppers, nameOf) {
    this.view = view;
    this.shoppers = shoppers;
    this.nameOf = nameOf;          // visitor -> display name or ""
    this.selectedId = null;
    this.followCustomer = null;    // customer id whose dots are highlighted
    this.lastDrawMs = 0;
    this.trails = true;
    this.sprites = new Map();
    // prefers-reduced-motion: dots jump to their new position and a leaving shopper just goes,
    // instead of gliding and fading.
    const motion = window.matchMedia("(prefers-reduced-motion: reduce)");
    this.reducedMotion = motion.matches;
    motion.addEventListener("change", (e) => { this.reducedMotion = e.matches; });
  }

  colourOf(state) {
    return STATE_COLOURS[state] || STATE_COLOURS.moving;
  }

  draw(nowMs) {
    const view = this.view;
    const ctx = view.clear("live");
    const dt = this.lastDrawMs ? Math.min(1000, nowMs - this.lastDrawMs) : 1000;
    this.lastDrawMs = nowMs;
    const ease = this.reducedMotion ? 1 : 1 - Math.exp(-dt / EASE_MS);
    const wallMs = Date.now();
    const groups = {moving: [], browsing: [], offered: []};
    const fading = [];
    for (const s of this.shoppers.byId.values()) {
      if (!Number.isFinite(s.tx)) continue;
      s.x += (s.tx - s.x) * ease;
      s.y += (s.ty - s.y) * ease;
      if (s.exitedAtMs) { if (!this.reducedMotion) fading.push(s); }
      else (groups[s.state] || groups.moving).push(s);
    }
    if (this.trails) this.drawTrails(ctx, groups, wallMs / 1000);
    this.drawDots(ctx, groups, fading, wallMs);

    // Highlights: the followed customer and the selected shopper, with a label.
    if (this.followCustomer) {
      for (const s of this.shoppers.ofCustomer(this.followCustomer)) this.ring(ctx, s, "#37b24d", 11);
    }
    const sel = this.selectedId && this.shoppers.byId.get(this.selectedId);
    if (sel && Number.isFinite(sel.x)) {
      this.ring(ctx, sel, "#212529", 9);
      this.label(ctx, sel);
    }
  }

  /** Each trail segment (dot -> newest point -> older points) goes into one path per state and age
   * bucket, so the whole trail layer is a couple of dozen strokes however many shoppers there are. */
  drawTrails(ctx, groups, nowS) {
    const view = this.view;
    ctx.lineCap = "butt";     // round caps cost a third of the frame when rasterised in software
    ctx.lineJoin = "miter";
    ctx.lineWidth = view.px(2);
    const bucketS = TRAIL_MAX_AGE_S / AGE_BUCKETS;
    const maxStep = MAX_TRAIL_STEP_M / (view.store.metres_per_px || 0.02);
    for (const state of STATES) {
      const paths = new Array(AGE_BUCKETS).fill(null);
      for (const s of groups[state]) {
        let ax = s.x;
        let ay = s.y;
        for (let k = 0; k < s.trailLen; k++) {
          const b = s.trailAt(k);
          const age = nowS - s.trailT[b];
          if (age >= TRAIL_MAX_AGE_S) break;
          const bx = s.trailX[b];
          const by = s.trailY[b];
          if (Math.abs(bx - ax) + Math.abs(by - ay) > maxStep) break;
          const bucket = Math.max(0, Math.floor(age / bucketS));
          const path = paths[bucket] || (paths[bucket] = new Path2D());
          path.moveTo(ax, ay);
          path.lineTo(bx, by);
          ax = bx;
          ay = by;
        }
      }
      ctx.strokeStyle = STATE_COLOURS[state];
      for (let i = 0; i < AGE_BUCKETS; i++) {
        if (!paths[i]) continue;
        ctx.globalAlpha = 0.6 * (1 - i / AGE_BUCKETS);
        ctx.stroke(paths[i]);
      }
    }
    ctx.globalAlpha = 1;
  }

  /** A dot per shopper, stamped from a pre-drawn sprite per state (cheaper to rasterise than arcs). */
  drawDots(ctx, groups, fading, wallMs) {
    const view = this.view;
    const r = view.px(DOT_CSS_PX + 1.2);
    const size = 2 * r;
    for (const state of STATES) {
      const sprite = this.sprite(state);
      for (const s of groups[state]) ctx.drawImage(sprite, s.x - r, s.y - r, size, size);
    }
    for (const s of fading) {
      ctx.globalAlpha = Math.max(0, 1 - (wallMs - s.exitedAtMs) / EXIT_FADE_MS);
      ctx.drawImage(this.sprite(s.state), s.x - r, s.y - r, size, size);
    }
    ctx.globalAlpha = 1;
  }

  /** The dot of one state, drawn once at device resolution (white rim, coloured fill). The state
   * shows by shape as well as colour: moving a circle, browsing a square, offered a diamond. */
  sprite(state) {
    const colour = this.colourOf(state);
    const dpr = this.view.dpr;
    const key = `${state}:${colour}@${dpr}`;
    let sprite = this.sprites.get(key);
    if (!sprite) {
      const px = Math.ceil(2 * (DOT_CSS_PX + 1.2) * dpr);
      sprite = document.createElement("canvas");
      sprite.width = px;
      sprite.height = px;
      const c = sprite.getContext("2d");
      c.beginPath();
      const r = DOT_CSS_PX * dpr;
      const m = px / 2;
      if (state === "browsing") {
        c.rect(m - r * 0.85, m - r * 0.85, r * 1.7, r * 1.7);
      } else if (state === "offered") {
        c.moveTo(m, m - r * 1.1); c.lineTo(m + r * 1.1, m); c.lineTo(m, m + r * 1.1); c.lineTo(m - r * 1.1, m);
        c.closePath();
      } else {
        c.arc(m, m, r, 0, Math.PI * 2);
      }
      c.fillStyle = colour;
      c.fill();
      c.lineWidth = 1.2 * dpr;
      c.strokeStyle = "#fff";
      c.stroke();
      this.sprites.set(key, sprite);
    }
    return sprite;
  }

  ring(ctx, s, colour, cssRadius) {
    const view = this.view;
    ctx.beginPath();
    ctx.arc(s.x, s.y, view.px(cssRadius), 0, Math.PI * 2);
    ctx.lineWidth = view.px(3);
    ctx.strokeStyle = colour;
    ctx.stroke();
  }

  label(ctx, s) {
    const view = this.view;
    let text = this.nameOf(s) || s.id.slice(0, 12);
    if (text.length > LABEL_MAX_CHARS) text = `${text.slice(0, LABEL_MAX_CHARS - 1)}…`;
    ctx.font = `600 ${view.px(12)}px system-ui, sans-serif`;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.lineWidth = view.px(3);
    ctx.strokeStyle = "rgba(255,255,255,0.95)";
    ctx.strokeText(text, s.x + view.px(13), s.y);
    ctx.fillStyle = "#212529";
    ctx.fillText(text, s.x + view.px(13), s.y);
  }

  /** The shopper whose dot is nearest to a plan point, within a click's reach. */
  hitTest(x, y) {
    let best = null;
    let bestD = this.view.px(HIT_CSS_PX);
    for (const s of this.shoppers.byId.values()) {
      if (s.exitedAtMs || !Number.isFinite(s.x)) continue;
      const d = Math.hypot(s.x - x, s.y - y);
      if (d <= bestD) { best = s; bestD = d; }
    }
    return best;
  }
}

/** Recent positions binned on a grid, drawn as soft colour under the dots. */
export class HeatLayer {
  constructor(view) {
    this.view = view;
    this.grid = null;
    this.visible = false;
    view.onResize.push(() => this.draw());
  }

  set(grid) {
    this.grid = grid;
    this.draw();
  }

  show(visible) {
    this.visible = visible;
    this.draw();
  }

  draw() {
    const ctx = this.view.clear("heat");
    const g = this.grid;
    if (!this.visible || !g || !g.max) return;
    const cell = g.cell_px;
    for (let r = 0; r < g.rows; r++) {
      for (let c = 0; c < g.cols; c++) {
        const n = g.counts[r * g.cols + c];
        if (!n) continue;
        const t = Math.sqrt(n / g.max);              // square root: a few busy cells don't hide the rest
        const hue = 220 - 220 * t;                    // blue (quiet) -> red (busy)
        ctx.fillStyle = `hsla(${hue.toFixed(0)}, 90%, 50%, ${(0.18 + 0.5 * t).toFixed(2)})`;
        ctx.fillRect(c * cell, r * cell, cell, cell);
      }
    }
  }
}
