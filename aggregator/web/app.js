// The live map page: wiring of data (HTTP + WebSockets) to the plan, panels and counters.
// WebSocket frames only queue events; one requestAnimationFrame callback applies everything
// queued since the last frame and draws once, so the page keeps up however fast events come.

import {getAll, getImage, getJSON, indexCustomers, offerLogout, segmentOf} from "./api.js";
import {$, duration, el, fill, setText} from "./dom.js";
import {EventLog, LOG_TYPES} from "./eventlog.js";
import {HeatLayer, LiveMap} from "./livemap.js";
import {couponCard, couponKey, customerIdOf, offersFrom, predictionOf, renderOfferLog} from "./offers.js";
import {PlanView} from "./planview.js";
import {ScenarioTab} from "./scenario.js";
import {ShopperList} from "./shopperlist.js";
import {ShopperStore} from "./shoppers.js";
import {wireTablist} from "./tabs.js";
import {LiveSocket} from "./ws.js";

const LAG_SAMPLES = 2000;
const MAX_PENDING = 20000;  // a hidden tab gets no frames: beyond this, keep only each shopper's latest move
const MAX_OFFER_CARDS = 50;

// Measurement hooks for tests and tests/benchmarks/bench_map.py.
const stats = {
  frames: 0, batches: 0, events: 0, wsFrames: 0, lastLagMs: 0, maxLagMs: 0, lastRecvLagMs: 0,
  lagSamples: [], recvLagSamples: [], shoppers: 0, pending: 0, started: performance.now(),
  applyMs: 0, drawMs: 0,   // exponentially averaged cost of a frame's two halves
};
const fw = {stats, ready: false, errors: []};
window.__fw = fw;
window.addEventListener("error", (e) => fw.errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => fw.errors.push(String(e.reason)));

const shoppers = new ShopperStore();
let customers = new Map();
let pending = [];          // events received, not yet applied
let oldestRecvMs = 0;      // performance.now() of the oldest pending frame
let view, live, heat, log, scenario, shopperList, mainTabs;
let endpoints = {};        // which optional APIs the server has (from /api/store)
let visitorsToday = null;  // from /api/stats/daily; null: count enters seen instead
let peopleNow = null;      // from /api/occupancy: the people estimate (issue 17); null: count dots instead
const offerKeys = new Set();
let offerCount = 0;

function customerOf(shopperOrEvent) {
  const id = shopperOrEvent.customerId ?? shopperOrEvent.customer_id;
  return id !== undefined && id !== null ? customers.get(String(id)) : undefined;
}

function nameOf(s) {
  const c = customerOf(s);
  return c && c.name ? String(c.name) : "";
}

/** A shopper's row in the Shoppers list: who, where, doing what (the details panel has the rest). */
function rowLabelOf(s) {
  const c = customerOf(s);
  const who = c && c.name ? `${c.name} (#${s.customerId})` : (s.id.length > 14 ? `${s.id.slice(0, 12)}…` : s.id);
  return `${who} · ${s.zone || "aisles"} · ${s.state}`;
}

function whoOf(ev) {
  const c = customerOf(ev);
  const id = String(ev.visitor || ev.id || "");
  if (c && c.name) return `${c.name} (#${ev.customer_id})`;
  return id.length > 12 ? `${id.slice(0, 10)}…` : id;
}

// ----------------------------------------------------------------------------- live data

function onMovement(data, receivedMs) {
  stats.wsFrames += 1;
  if (!pending.length) oldestRecvMs = receivedMs;
  if (Array.isArray(data)) {
    for (let i = 0; i < data.length; i++) pending.push(data[i]);
  } else if (data && typeof data === "object") {
    pending.push(data);
  }
  if (pending.length > MAX_PENDING) compactPending();
}

/** Drop superseded moves (not enters, exits, offers...) so a backlog stays bounded. */
function compactPending() {
  const lastMove = new Map();
  pending.forEach((ev, i) => { if (ev.type === "move") lastMove.set(ev.visitor || ev.id, i); });
  const kept = pending.filter((ev, i) => ev.type !== "move" || lastMove.get(ev.visitor || ev.id) === i);
  stats.compacted = (stats.compacted || 0) + pending.length - kept.length;
  pending = kept;
}

function applyAgentEvents(batch) {
  let changed = false;
  for (const ev of batch) {
    if (ev.type !== "agent" || !ev.agent) continue;
    if (ev.state === "online" || ev.state === "offline") {
      if (view.agentState.get(ev.agent) !== ev.state) changed = true;
      view.agentState.set(ev.agent, ev.state);
    }
    if (ev.health) agentHealth.set(ev.agent, ev.health);
  }
  if (changed) {
    view.drawBase();
    renderSensors();
  }
}

function frame(nowMs) {
  const t0 = performance.now();
  const batch = pending;
  if (batch.length) {
    pending = [];
    const wallMs = Date.now();
    shoppers.apply(batch, wallMs);
    applyAgentEvents(batch);
    log.add(batch);
    for (const ev of batch) if (ev.type === "offer" && ev.prediction) addOffer(ev.prediction);
    let oldestTs = Infinity;
    for (let i = 0; i < batch.length; i++) {
      const ts = batch[i].ts;
      if (ts < oldestTs) oldestTs = ts;
    }
    stats.events += batch.length;
    stats.batches += 1;
    if (Number.isFinite(oldestTs)) {
      // Publish-to-draw lag of the oldest event drawn in this frame (same clock as the server's ts).
      stats.lastLagMs = Math.max(0, wallMs - oldestTs * 1000);
      stats.maxLagMs = Math.max(stats.maxLagMs, stats.lastLagMs);
      stats.lagSamples.push(stats.lastLagMs);
      if (stats.lagSamples.length > LAG_SAMPLES) stats.lagSamples.splice(0, stats.lagSamples.length - LAG_SAMPLES);
    }
    stats.lastRecvLagMs = nowMs - oldestRecvMs;
    stats.recvLagSamples.push(stats.lastRecvLagMs);
    if (stats.recvLagSamples.length > LAG_SAMPLES) stats.recvLagSamples.splice(0, stats.recvLagSamples.length - LAG_SAMPLES);
  }
  if (stats.frames % 30 === 0) shoppers.sweep(Date.now());
  const t1 = performance.now();
  live.draw(nowMs);
  log.flush();
  const t2 = performance.now();
  stats.applyMs += 0.05 * (t1 - t0 - stats.applyMs);
  stats.drawMs += 0.05 * (t2 - t1 - stats.drawMs);
  if (stats.frames % 15 === 0) {
    updateCounters();
    selectFollowed();
    updateDetails();
    shopperList.update(nowMs, selectedId);
  }
  stats.frames += 1;
  stats.shoppers = shoppers.size;
  stats.pending = pending.length;
  requestAnimationFrame(frame);
}

function updateCounters() {
  setText("count-now", peopleNow !== null ? peopleNow : shoppers.size);
  setText("shopper-count", shoppers.size);
  setText("count-today", visitorsToday !== null ? visitorsToday : shoppers.entersSeen.size);
}

/** "In store now" is the occupancy estimate (random MACs linked, fixtures and next door out), not the dots. */
async function refreshOccupancy() {
  try {
    const occ = await getJSON("/api/occupancy");
    peopleNow = occ && Number.isFinite(occ.people) ? occ.people : null;
  } catch (err) {
    peopleNow = null;
  }
  updateCounters();
}

async function refreshStats() {
  if (!endpoints.stats_daily) return updateCounters();
  try {
    const daily = await getJSON("/api/stats/daily");
    const rows = daily && Array.isArray(daily.rows) ? daily.rows : null;
    if (rows && rows.length) visitorsToday = Math.max(Number(rows[rows.length - 1].visitors) || 0, 0);
  } catch (err) {
    visitorsToday = null;
  }
  updateCounters();
}

// ----------------------------------------------------------------------------- selection

let selectedId = null;

function select(id) {
  selectedId = id;
  live.selectedId = id;
  updateDetails();
  shopperList.update(performance.now(), id);  // the list follows a click on the plan at once
}

function updateDetails() {
  const s = selectedId ? shoppers.byId.get(selectedId) : null;
  $("details-empty").hidden = Boolean(s);
  $("details-body").hidden = !s;
  $("details-links").hidden = !s;
  if (!s) return;
  const c = customerOf(s);
  const now = Date.now() / 1000;
  setText("d-id", s.id);
  setText("d-customer", c ? `${c.name ?? ""} (#${s.customerId})` : (s.customerId ? `#${s.customerId}` : "not a loyalty customer"));
  setText("d-segment", c ? segmentOf(c) : "–");
  setText("d-state", s.exitedAtMs ? "left the store" : s.state);
  setText("d-zone", s.zone || "aisles (no zone)");
  setText("d-dwell", s.zone ? duration(now - s.zoneSinceTs) : "–");
  setText("d-visit", duration(now - s.enteredTs));
  setText("d-pos", Number.isFinite(s.tx) ? `${Math.round(s.tx)}, ${Math.round(s.ty)} px` : "–");
  const phone = $("d-phone");
  phone.hidden = !s.customerId;
  if (s.customerId) phone.href = `/phone/${encodeURIComponent(s.customerId)}`;
}

// ----------------------------------------------------------------------------- offers

function addOffer(prediction, prepend = true) {
  const p = predictionOf(prediction);
  if (!p) return;
  const key = couponKey(p);
  if (offerKeys.has(key)) return;
  offerKeys.add(key);
  const cid = customerIdOf(p);
  const c = customers.get(cid);
  const box = $("offers");
  const hint = box.querySelector(".hint");
  if (hint) hint.remove();
  const card = couponCard(p, c ? `${c.name} (#${cid})` : `#${cid}`);
  card.addEventListener("click", () => {
    const found = shoppers.ofCustomer(cid);
    if (found.length) select(found[0].id);
  });
  if (prepend) box.prepend(card); else box.append(card);
  while (box.childElementCount > MAX_OFFER_CARDS) box.lastElementChild.remove();
  offerCount += 1;
  setText("offer-count", offerCount);
  for (const s of shoppers.ofCustomer(cid)) { s.offered = true; s.state = "offered"; }
}

async function refreshOfferLog() {
  if (!endpoints.offer_log) {
    fill("offer-log", el("li", {class: "empty", text: "The offers module is not running."}));
    return;
  }
  try {
    renderOfferLog($("offer-log"), await getJSON("/api/offers/log"));
  } catch (err) {
    fill("offer-log", el("li", {class: "empty", text: `Could not load the offer log: ${err.message}`}));
  }
}

// ----------------------------------------------------------------------------- sensors

const agentHealth = new Map();

function agentsFrom(payload) {
  const out = new Map();
  if (!payload) return out;
  let list = Array.isArray(payload) ? payload : (payload.items || payload.agents);
  if (!list && typeof payload === "object") {
    list = Object.entries(payload).map(([agent, v]) => Object.assign({agent}, typeof v === "object" ? v : {state: v}));
  } else if (list && !Array.isArray(list)) {
    list = Object.entries(list).map(([agent, v]) => Object.assign({agent}, typeof v === "object" ? v : {state: v}));
  }
  for (const a of list || []) {
    const id = a.agent ?? a.id ?? a.agent_id;
    let state = a.state ?? a.status;
    if (state === undefined && typeof a.online === "boolean") state = a.online ? "online" : "offline";
    if (id !== undefined && (state === "online" || state === "offline")) out.set(String(id), state);
    if (id !== undefined && a.health) agentHealth.set(String(id), a.health);
  }
  return out;
}

function renderSensors() {
  const store = view.store;
  const byAgent = new Map();
  for (const s of store.sensors || []) {
    if (!byAgent.has(s.agent)) byAgent.set(s.agent, []);
    byAgent.get(s.agent).push(s);
  }
  for (const a of view.agentState.keys()) if (!byAgent.has(a)) byAgent.set(a, []);
  const items = [];
  for (const [agent, list] of [...byAgent.entries()].sort()) {
    const state = view.agentState.get(agent) || "unknown";
    const health = agentHealth.get(agent);
    items.push(el("li", {class: `agent agent-${state}`, dataset: {agent}},
      el("i", {class: `sensor sensor-${state}`, "aria-hidden": "true"}),
      el("b", {text: agent}), ` ${state}`,
      health && health.readings_per_s !== undefined ? el("small", {text: ` · ${Number(health.readings_per_s).toFixed(1)} readings/s`}) : null,
      el("ul", null, list.map((s) => el("li", {text: `${s.kind} ${s.id}${s.zone ? ` (${s.zone})` : ""}`})))));
  }
  for (const e of store.device_errors || []) items.push(el("li", {class: "agent agent-error", text: `${e.file}: ${e.error}`}));
  fill("sensor-list", items);
}

// ----------------------------------------------------------------------------- UI wiring

function wireTabs() {
  mainTabs = wireTablist($("main-tabs"), (tab) => {
    if (tab.dataset.tab === "scenario") scenario.show();
    else view.resize();
  });
  wireTablist($("side-tabs"), (tab) => {
    if (tab.dataset.panel === "offerlog") refreshOfferLog();
  });
}

function showTab(name) {
  mainTabs.select(name);
}

function wireFilters() {
  const box = $("log-filters");
  fill(box, LOG_TYPES.map((type) => el("label", {class: `filter filter-${type}`},
    el("input", {type: "checkbox", value: type, checked: log.filters.has(type),
      onchange: (e) => log.setFilter(type, e.target.checked)}),
    ` ${type}`)));
  $("d-only").addEventListener("click", () => {
    log.setOnly(selectedId);
    fill("log-only", selectedId ? el("button", {type: "button", class: "link", text: "show everyone",
      onclick: () => { log.setOnly(null); fill("log-only"); }}) : null);
  });
  $("d-close").addEventListener("click", () => select(null));
}

function wireMap() {
  const top = view.canvases.live;
  top.addEventListener("click", (e) => {
    const p = view.clientToPlan(e.clientX, e.clientY);
    const hit = live.hitTest(p.x, p.y);
    select(hit ? hit.id : null);
  });
  top.addEventListener("mousemove", (e) => {
    const p = view.clientToPlan(e.clientX, e.clientY);
    const hit = live.hitTest(p.x, p.y);
    const sensor = hit ? null : view.sensorAt(p.x, p.y);
    top.style.cursor = hit ? "pointer" : "default";
    top.title = hit ? (nameOf(hit) || hit.id) : (sensor ? `${sensor.kind} ${sensor.id} · ${sensor.agent} · ${view.agentState.get(sensor.agent) || "unknown"}` : "");
  });
  const follow = $("follow-customer");
  for (const [id, c] of customers) follow.appendChild(el("option", {value: id, text: `${c.name ?? id} (#${id})`}));
  follow.addEventListener("change", () => followCustomer(follow.value || null));
  const toggle = $("heat-toggle");
  const minutes = $("heat-minutes");
  toggle.addEventListener("change", () => {
    heat.show(toggle.checked);
    if (toggle.checked) refreshHeat(); else setText("map-status", "");
  });
  minutes.addEventListener("change", () => { if (toggle.checked) refreshHeat(); });
}

let autoSelected = null;   // the followed customer's shopper we selected, so a manual click wins

/** A followed customer who (re)appears on the plan is selected once, so their details show. */
function selectFollowed() {
  const id = live.followCustomer;
  if (!id) return;
  const found = shoppers.ofCustomer(id).filter((s) => !s.exitedAtMs);
  if (found.length && found[0].id !== autoSelected) {
    autoSelected = found[0].id;
    select(found[0].id);
  }
}

function followCustomer(id) {
  live.followCustomer = id;
  autoSelected = null;
  $("follow-customer").value = id || "";
  selectFollowed();
}

async function refreshHeat() {
  try {
    const grid = await getJSON(`/api/heatmap?minutes=${encodeURIComponent($("heat-minutes").value)}`);
    heat.set(grid);
    setText("map-status", `heat map: ${grid.total} positions in the last ${grid.minutes} min`);
  } catch (err) {
    setText("map-status", `heat map unavailable: ${err.message}`);
  }
}

// ----------------------------------------------------------------------------- start

async function main() {
  const store = await getJSON("/api/store");
  endpoints = store.endpoints || {};
  const [customerPayload, agents] = await Promise.all([
    endpoints.customers ? getAll("/api/customers") : [],
    endpoints.agents ? getAll("/api/agents") : null,
  ]);
  customers = indexCustomers(customerPayload);
  setText("store-name", store.name || store.id || "");
  $("dashboard-link").hidden = !endpoints.dashboard;
  offerLogout($("logout-form"));
  view = new PlanView($("map"), store, ["heat", "live"]);
  live = new LiveMap(view, shoppers, nameOf);
  heat = new HeatLayer(view);
  log = new EventLog($("event-log"), whoOf);
  shopperList = new ShopperList($("shopper-list"), shoppers, rowLabelOf, select);
  scenario = new ScenarioTab(store, customers, (cid) => { showTab("preview"); followCustomer(String(cid)); });
  view.agentState = agentsFrom(agents);
  view.drawBase();
  renderSensors();
  wireTabs();
  wireFilters();
  wireMap();

  if (store.background_url) {
    getImage(store.background_url).then((bitmap) => {
      view.background = bitmap;
      view.drawBase();
      scenario.setBackground(bitmap);
    }).catch((err) => setText("map-status", `plan picture unavailable (${err.message}); showing zones`));
  }

  // Where everyone is now, then live updates. The snapshot is taken again each time the socket
  // opens (first connect and every reconnect): whatever moved before the socket was open, and so
  // never reached it, is in the snapshot taken after it opened.
  const resync = async () => {
    const now = endpoints.positions ? await getAll("/api/positions") : [];
    for (const p of now) if (p.x !== null && p.y !== null) pending.push(Object.assign({}, p, {type: "move", ts: Date.now() / 1000}));
  };
  await resync();
  const offers = endpoints.offers ? offersFrom(await getJSON("/api/offers?limit=50")) : [];
  for (const item of offers) addOffer(item, false);

  const conn = $("conn");
  new LiveSocket("/ws/movement", onMovement, (state) => {
    conn.textContent = state === "open" ? "live" : "reconnecting…";
    conn.className = `conn conn-${state}`;
    if (state === "open") resync().catch((err) => console.warn(`positions after reconnect: ${err.message}`));
  });
  new LiveSocket("/ws/coupons", (data) => {
    const list = Array.isArray(data) ? data : [data];
    for (const p of list) addOffer(p);
  });

  refreshStats();
  setInterval(refreshStats, 30000);
  refreshOccupancy();
  setInterval(refreshOccupancy, 5000);
  setInterval(() => { if ($("heat-toggle").checked) refreshHeat(); }, 15000);
  setInterval(() => { if ($("panel-offerlog").classList.contains("active")) refreshOfferLog(); }, 4000);

  fw.shoppers = shoppers;
  fw.live = live;
  fw.view = view;
  fw.shopperList = shopperList;
  fw.select = select;
  fw.planToClient = (x, y) => view.planToClient(x, y);
  fw.dotClientPosition = (id) => {
    const s = shoppers.byId.get(String(id));
    return s && Number.isFinite(s.x) ? view.planToClient(s.x, s.y) : null;
  };
  fw.scenarioPlanToClient = (x, y) => scenario.view && scenario.view.planToClient(x, y);
  fw.ready = true;
  requestAnimationFrame(frame);
}

main().catch((err) => {
  fw.errors.push(String(err));
  setText("map-status", `Could not start the map: ${err.message}`);
  console.error(err);
});
