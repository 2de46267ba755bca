// The chain page: stores side by side with the chain total, zone ranking, live "in store now".
// Every value goes into the page through textContent, never as HTML: store and zone names come
// from files and brokers we do not control.
"use strict";

function cell(row, value) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "–" : String(value);
  row.appendChild(td);
}

async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(url + ": HTTP " + response.status);
  return response.json();
}

function fillStores(day, stores, chain, live) {
  const body = document.querySelector("#stores tbody");
  body.replaceChildren();
  const now = new Map(live.map((s) => [s.store, s.in_store_now]));
  const rows = stores.filter((r) => r.date === day);
  const names = new Set(rows.map((r) => r.store).concat(live.map((s) => s.store)));
  for (const name of [...names].sort()) {
    const r = rows.find((x) => x.store === name) || {};
    const tr = document.createElement("tr");
    tr.dataset.store = name;
    for (const v of [name, now.get(name), r.visitors, r.new_visitors, r.returning_visitors,
                     r.occasional_visitors, r.busiest_hour, r.passersby, r.visits]) cell(tr, v);
    body.appendChild(tr);
  }
  const c = chain.find((x) => x.date === day) || {};
  const total = live.reduce((sum, s) => sum + (typeof s.in_store_now === "number" ? s.in_store_now : 0), 0);
  const tr = document.createElement("tr");
  tr.className = "chain";
  for (const v of ["chain", live.length ? total : null, c.visitors, c.new_visitors, c.returning_visitors,
                   c.occasional_visitors, c.busiest_hour, c.passersby, c.visits]) cell(tr, v);
  body.appendChild(tr);
}

async function fillZones(day) {
  const data = await getJson("/api/chain/zones?date=" + encodeURIComponent(day));
  const body = document.querySelector("#zones tbody");
  body.replaceChildren();
  for (const z of data.zones) {
    const tr = document.createElement("tr");
    for (const v of [z.zone, z.visitors, z.rank]) cell(tr, v);
    body.appendChild(tr);
  }
}

async function refresh() {
  const select = document.getElementById("day");
  const [chain, stores] = await Promise.all([getJson("/api/chain/daily"), getJson("/api/chain/stores")]);
  const days = chain.days.map((d) => d.date);
  if (select.options.length !== days.length) {
    const keep = select.value;
    select.replaceChildren(...days.map((d) => new Option(d, d)));
    select.value = days.includes(keep) ? keep : days[days.length - 1] || "";
  }
  const day = select.value;
  fillStores(day, stores.days, chain.days, stores.live);
  await fillZones(day);
  document.getElementById("status").textContent =
    stores.live_connected ? "live: connected to the chain broker" : "live: no chain broker";
  document.body.dataset.ready = "1";
}

document.getElementById("day").addEventListener("change", () => refresh().catch(console.error));
refresh().catch((e) => { document.getElementById("status").textContent = String(e); });
setInterval(() => refresh().catch(console.error), 5000);
