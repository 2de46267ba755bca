// Floorwalker footfall dashboard: plain script, SVG charts, no build step, nothing fetched from the internet.
// Data is only ever inserted with textContent / SVG attributes, never as HTML. Behind an API token the
// browser sends the session cookie of the login page; a 401 means it ended, so back to the login page.
// Every chart's values are readable without hovering: written on the bars where they fit, and in a
// table under each chart.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLOURS = { a: "#2f6fde", b: "#35a47a", c: "#e0a12a", d: "#c04e6a", muted: "#9aa3b0" };
const VALUE_LABEL_MIN_SLOT = 20;  // viewBox units a bar's slot needs for its value written above it
const state = { day: null, offset: 0, limit: 20, total: 0 };

function el(tag, attrs = {}, text = null) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = String(text);
  return node;
}

async function api(endpoint, params, format = "json") {
  const query = new URLSearchParams(params);
  if (format === "csv") query.set("format", "csv");
  const resp = await fetch(`/api/stats/${endpoint}?${query}`);
  if (resp.status === 401) {
    window.location.assign(`/login?${new URLSearchParams({ next: window.location.pathname + window.location.search })}`);
  }
  if (!resp.ok) {
    let reason = resp.statusText;
    try { reason = (await resp.json()).error || reason; } catch (_e) { /* not JSON */ }
    throw new Error(`${endpoint}: ${reason}`);
  }
  return format === "csv" ? resp.blob() : resp.json();
}

function status(text, isError = false) {
  const node = document.getElementById("status");
  node.textContent = text;
  node.classList.toggle("error", isError);
}

// ---------------------------------------------------------------- charts
function frame(container, width, height) {
  container.replaceChildren();
  const title = container.closest(".card")?.querySelector("h2")?.firstChild?.textContent?.trim() || "chart";
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${title}: bar chart; the values are also in the table below it` });
  container.appendChild(svg);
  return svg;
}

// The axis top: 4 ticks of a round step (1, 2, 2.5 or 5 times a power of ten), so labels are whole numbers.
function niceMax(value) {
  if (value <= 0) return 4;
  const raw = value / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw && Number.isInteger(s)) || 10 * power;
  return Math.max(4, step * 4);
}

function axis(svg, box, maxValue) {
  for (let i = 0; i <= 4; i += 1) {
    const y = box.y + box.h - (box.h * i) / 4;
    svg.appendChild(el("svg:line", { x1: box.x, x2: box.x + box.w, y1: y, y2: y, class: "grid" }));
    svg.appendChild(el("svg:text", { x: box.x - 6, y: y + 4, "text-anchor": "end" }, Math.round((maxValue * i) / 4)));
  }
}

function legend(container, items) {
  const div = el("div", { class: "legend" });
  for (const [label, colour] of items) {
    const span = el("span");
    span.appendChild(el("i", { style: `background:${colour}` }));
    span.appendChild(document.createTextNode(label));
    div.appendChild(span);
  }
  container.appendChild(div);
}

function empty(svg, width, height) {
  svg.appendChild(el("svg:text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" },
    "no data for this day"));
}

// Stacked vertical bars: labels[i] with series [{name, colour, values}] and an optional line series.
function barChart(container, labels, series, { line = null, labelEvery = 1, height = 220, width = 900 } = {}) {
  const box = { x: 40, y: 10, w: width - 50, h: height - 40 };
  const svg = frame(container, width, height);
  svg.setAttribute("data-chart", "bars");
  const totals = labels.map((_, i) => series.reduce((s, ser) => s + ser.values[i], 0));
  const lineMax = line ? Math.max(...line.values) : 0;
  const maxValue = niceMax(Math.max(...totals, lineMax, 0));
  axis(svg, box, maxValue);
  const slot = box.w / Math.max(labels.length, 1);
  labels.forEach((label, i) => {
    let base = box.y + box.h;
    for (const ser of series) {
      const h = (box.h * ser.values[i]) / maxValue;
      if (h > 0) {
        const rect = el("svg:rect", { x: box.x + i * slot + slot * 0.15, y: base - h, width: slot * 0.7, height: h,
          fill: ser.colour, class: "bar" });
        rect.appendChild(el("svg:title", {}, `${label} · ${ser.name}: ${ser.values[i]}`));
        svg.appendChild(rect);
        base -= h;
      }
    }
    if (slot >= VALUE_LABEL_MIN_SLOT && totals[i] > 0) {
      svg.appendChild(el("svg:text", { x: box.x + i * slot + slot / 2, y: base - 3, "text-anchor": "middle",
        class: "value" }, totals[i]));
    }
    if (i % labelEvery === 0) {
      svg.appendChild(el("svg:text", { x: box.x + i * slot + slot / 2, y: box.y + box.h + 16, "text-anchor": "middle" },
        label));
    }
  });
  if (line) {
    const points = line.values.map((v, i) => `${box.x + i * slot + slot / 2},${box.y + box.h - (box.h * v) / maxValue}`);
    svg.appendChild(el("svg:polyline", { points: points.join(" "), fill: "none", stroke: line.colour,
      "stroke-width": 2, class: "line" }));
  }
  legend(container, [...series.map((s) => [s.name, s.colour]), ...(line ? [[line.name, line.colour]] : [])]);
  if (totals.every((t) => t === 0) && lineMax === 0) empty(svg, width, height);
  const columns = [...series, ...(line ? [line] : [])];
  valuesTable(container, ["", ...columns.map((s) => s.name), ...(series.length > 1 ? ["total"] : [])],
    labels.map((label, i) => [label, ...columns.map((s) => s.values[i]), ...(series.length > 1 ? [totals[i]] : [])]));
}

// The chart's numbers as a table (in a disclosure, so the page stays a page of charts).
function valuesTable(container, head, rows) {
  const details = el("details", { class: "values" });
  details.appendChild(el("summary", {}, "Values as a table"));
  const table = el("table");
  const tr = el("tr");
  for (const h of head) tr.appendChild(el("th", { scope: "col" }, h));
  table.appendChild(el("thead")).appendChild(tr);
  const tbody = table.appendChild(el("tbody"));
  for (const row of rows) {
    const r = el("tr");
    row.forEach((v, i) => r.appendChild(el(i === 0 ? "th" : "td", i === 0 ? { scope: "row" } : {}, v)));
    tbody.appendChild(r);
  }
  details.appendChild(table);
  container.appendChild(details);
}

// Horizontal bars, one per row, longest first.
function rankChart(container, rows, highlight) {
  const width = 440;
  const rowH = 26;
  const height = Math.max(rowH * rows.length + 10, 60);
  const svg = frame(container, width, height);
  svg.setAttribute("data-chart", "ranking");
  const maxValue = niceMax(Math.max(...rows.map((r) => r.value), 0));
  rows.forEach((row, i) => {
    const y = 5 + i * rowH;
    svg.appendChild(el("svg:text", { x: 110, y: y + 16, "text-anchor": "end" }, row.label));
    const w = ((width - 170) * row.value) / maxValue;
    const rect = el("svg:rect", { x: 118, y: y + 3, width: Math.max(w, 1), height: rowH - 8, class: "bar",
      fill: highlight(row) ? COLOURS.a : COLOURS.muted });
    rect.appendChild(el("svg:title", {}, `${row.label}: ${row.value}`));
    svg.appendChild(rect);
    svg.appendChild(el("svg:text", { x: 124 + w, y: y + 16, class: "value" }, row.value));
  });
  if (!rows.length) empty(svg, width, height);
  valuesTable(container, ["", "visitors"], rows.map((r) => [r.label, r.value]));
}

// ---------------------------------------------------------------- sections
function tiles(dayRow) {
  const node = document.getElementById("tiles");
  node.replaceChildren();
  const rate = dayRow.capture_rate === null ? "–" : `${Math.round(dayRow.capture_rate * 100)} %`;
  const busiest = dayRow.busiest_hour === null ? "–" : `${dayRow.busiest_hour}:00 (${dayRow.busiest_hour_visitors})`;
  for (const [label, value] of [["visitors", dayRow.visitors], ["new visitors", dayRow.new_visitors],
    ["passers-by", dayRow.passersby], ["capture rate", rate], ["busiest hour", busiest],
    ["door in / out", `${dayRow.door_in} / ${dayRow.door_out}`]]) {
    const tile = el("div", { class: "tile" });
    tile.appendChild(el("div", { class: "value" }, value));
    tile.appendChild(el("div", { class: "label" }, label));
    node.appendChild(tile);
  }
}

async function loadVisitors() {
  const body = await api("visitors", { date: state.day, limit: state.limit, offset: state.offset });
  state.total = body.total;
  const tbody = document.querySelector("#visitors tbody");
  tbody.replaceChildren();
  for (const row of body.rows) {
    const tr = el("tr");
    for (const value of [row.visitor, row.favourite_zone ?? "–", row.favourite_zone_entries,
      row.zones_entered_more_than_once.join(", "), row.loyalty ?? ""]) tr.appendChild(el("td", {}, value));
    tbody.appendChild(tr);
  }
  const last = Math.min(state.offset + body.rows.length, body.total);
  document.getElementById("page").textContent = body.total ? `${state.offset + 1}–${last} of ${body.total}` : "none";
  document.getElementById("prev").disabled = state.offset === 0;
  document.getElementById("next").disabled = body.next_offset === null;
}

function rangeParams() {
  const days = Number(document.getElementById("range").value);
  const to = new Date(`${state.day}T12:00:00Z`);
  const from = new Date(to.getTime() - (days - 1) * 86400000);
  return { from: from.toISOString().slice(0, 10), to: state.day };
}

async function loadAll() {
  status("loading…");
  try {
    const [daily, hourly, zones, dwell, loyalty] = await Promise.all([
      api("daily", rangeParams()), api("hourly", { date: state.day }), api("zones", { date: state.day }),
      api("dwell", { date: state.day }), api("loyalty", { date: state.day })]);
    const days = daily.rows;
    tiles(days[days.length - 1]);
    barChart(document.getElementById("chart-daily"), days.map((d) => d.date.slice(5)), [
      { name: "new", colour: COLOURS.a, values: days.map((d) => d.new_visitors) },
      { name: "returning ≤ 7 days", colour: COLOURS.b, values: days.map((d) => d.returning_visitors) },
      { name: "occasional", colour: COLOURS.c, values: days.map((d) => d.occasional_visitors) },
    ], { labelEvery: Math.ceil(days.length / 15) });
    const hours = hourly.rows;
    barChart(document.getElementById("chart-hourly"), hours.map((h) => `${h.hour}`), [
      { name: "visitors", colour: COLOURS.a, values: hours.map((h) => h.visitors) },
    ], { line: { name: "occupancy (door in − out)", colour: COLOURS.d, values: hours.map((h) => h.occupancy) } });
    const doorLegend = document.createElement("div");
    doorLegend.className = "legend";
    doorLegend.textContent = `door in ${hours.reduce((s, h) => s + h.door_in, 0)} · ` +
      `door out ${hours.reduce((s, h) => s + h.door_out, 0)}`;
    document.getElementById("chart-hourly").appendChild(doorLegend);
    rankChart(document.getElementById("chart-zones"), zones.rows.map((z) => ({ label: z.zone, value: z.visitors,
      top5: z.top5 })), (r) => r.top5);
    barChart(document.getElementById("chart-dwell"), dwell.rows.map((b) => b.bucket), [
      { name: "visits", colour: COLOURS.b, values: dwell.rows.map((b) => b.visits) }], { height: 200, width: 440 });
    rankChart(document.getElementById("chart-loyalty"), loyalty.rows.map((r) => ({
      label: r.category.replace("_", " "), value: r.visitors })), (r) => r.label !== "passersby");
    await loadVisitors();
    status(`updated ${new Date().toLocaleTimeString()}`);
    document.body.dataset.loaded = "true";
  } catch (err) {
    status(err.message, true);
  }
}

async function downloadCsv(endpoint) {
  const params = endpoint === "daily" ? rangeParams() : { date: state.day };
  try {
    const blob = await api(endpoint, params, "csv");
    const link = el("a", { href: URL.createObjectURL(blob), download: `${endpoint}-${state.day}.csv` });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  } catch (err) {
    status(err.message, true);
  }
}

async function offerLogout() {
  const form = document.getElementById("logout-form");
  try {
    const resp = await fetch("/api/session", { headers: { Accept: "application/json" } });
    form.hidden = !resp.ok || (await resp.json()).via !== "cookie";
  } catch (_e) {
    form.hidden = true;
  }
}

async function start() {
  offerLogout();
  const dayInput = document.getElementById("day");
  let range = { last: null, today: new Date().toISOString().slice(0, 10) };
  try { range = await api("range", {}); } catch (err) { status(err.message, true); }
  state.day = range.last || range.today;
  dayInput.value = state.day;
  dayInput.addEventListener("change", () => {
    if (!dayInput.value) return;
    state.day = dayInput.value;
    state.offset = 0;
    loadAll();
  });
  document.getElementById("range").addEventListener("change", loadAll);
  document.getElementById("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    loadVisitors().catch((err) => status(err.message, true));
  });
  document.getElementById("next").addEventListener("click", () => {
    state.offset += state.limit;
    loadVisitors().catch((err) => status(err.message, true));
  });
  for (const button of document.querySelectorAll("button.csv")) {
    button.addEventListener("click", () => downloadCsv(button.dataset.endpoint));
  }
  await loadAll();
  setInterval(() => { if (state.day === range.today) loadAll(); }, 30000);  // today keeps moving
}

start();
