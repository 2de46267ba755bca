"""Footfall analytics over 30 days of a busy store: endpoint latency, roll-up cost, equality with recompute.

    python tests/benchmarks/run.py analytics [--quick]

1. ``generate`` writes 30 days x 5,000 visits a day (quick: 7 x 1,000) into a temporary SQLite file
   and the roll-ups are built from scratch (analytics.recompute_s).
2. Two more days are replayed as live ingest would write them (visit opened, sightings, door counts,
   visit closed with its passer-by flag), 200 rows per commit: once without roll-ups, once with an
   incremental update after every commit (analytics.ingest_rows_per_s.*; analytics.rollup_rows_per_s
   is the update's own throughput).
3. Every stats endpoint is requested repeatedly through the real aiohttp route module and service
   (analytics.<endpoint>.p99_ms, target <= 50 ms).
4. The incrementally maintained tables are compared with a from-scratch recompute
   (analytics.equal_to_recompute, 1 = identical).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.config import load_store
from aggregator.analytics.definitions import AnalyticsParams
from aggregator.analytics.generator import generate
from aggregator.analytics.rollup import Rollup, snapshot
from aggregator.analytics.schema import connect, ensure_core_tables
from aggregator.api import stats
from tests.benchmarks.figures import Figure

REPO = Path(__file__).resolve().parent.parent.parent
END = date(2026, 11, 1)  # a fixed history: Europe/Warsaw's DST change (10-25) falls inside it
BATCH_ROWS = 200


def run(args: argparse.Namespace) -> Iterator[Figure]:
    days, per_day, requests = (7, 1000, 60) if args.quick else (30, 5000, 300)
    store = load_store(REPO / "firmware-config" / "store.toml")
    params = AnalyticsParams(timezone=store.timezone)
    work = Path(tempfile.mkdtemp(prefix="fw-bench-analytics-"))
    try:
        db = work / "analytics.db"
        conn = connect(db)
        ensure_core_tables(conn)
        started = time.perf_counter()
        result = generate(conn, plan=store.plan, entrance=store.entrance, timezone=store.timezone, days=days,
                          visits_per_day=per_day, seed=1, end_day=END)
        yield Figure("analytics.generate_s", round(time.perf_counter() - started, 1), "s",
                     note=f"{result.visits:,} visits, {result.sightings:,} sightings, {days} days")
        rollup = Rollup(conn, params)
        started = time.perf_counter()
        rollup.recompute()
        yield Figure("analytics.recompute_s", round(time.perf_counter() - started, 1), "s")

        live = _live_rows(work, store, per_day, days)
        half = len(live) // 2
        off_s = _replay(conn, live[:half], None)
        rollup.update()
        on_s, update_s = _replay_with_rollup(conn, live[half:], rollup)
        yield Figure("analytics.ingest_rows_per_s.rollups_off", round(half / off_s), "rows/s",
                     note=f"{BATCH_ROWS} rows per commit")
        yield Figure("analytics.ingest_rows_per_s.rollups_on", round((len(live) - half) / on_s), "rows/s",
                     note="incremental update after every commit")
        yield Figure("analytics.rollup_rows_per_s", round((len(live) - half) / update_s), "rows/s",
                     note="the incremental update alone")
        incremental = snapshot(conn)
        conn.close()

        yield from asyncio.run(_latencies(db, params, END, days, requests))

        conn = connect(db)
        Rollup(conn, params).recompute()
        yield Figure("analytics.equal_to_recompute", int(snapshot(conn) == incremental), "", target="== 1")
        conn.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _live_rows(work: Path, store, per_day: int, days: int) -> list[tuple[float, str, tuple]]:
    """Two more days, as (ts, kind, row) in arrival order: visit open, sightings, doors, visit close."""
    staging = connect(work / "staging.db")
    ensure_core_tables(staging)
    generate(staging, plan=store.plan, entrance=store.entrance, timezone=store.timezone, days=2,
             visits_per_day=per_day, seed=2, end_day=END + timedelta(days=2))
    events: list[tuple[float, str, tuple]] = []
    for row in staging.execute("SELECT visit_id, visitor, device, customer_id, start_ts, end_ts, passerby FROM visits"):
        events.append((row[4], "open", row))
        events.append((row[5], "close", row))
    for row in staging.execute("SELECT ts, visitor, device, visit_id, x, y, accuracy_m, zone FROM sightings"):
        events.append((row[0], "sight", row))
    for row in staging.execute("SELECT * FROM door_events"):
        events.append((row[1], "door", row))
    staging.close()
    order = {"open": 0, "sight": 1, "door": 1, "close": 2}
    events.sort(key=lambda e: (e[0], order[e[1]]))
    return events


def _write(conn: sqlite3.Connection, batch: list[tuple[float, str, tuple]], seq: int) -> int:
    conn.execute("BEGIN IMMEDIATE")
    for _ts, kind, row in batch:
        if kind == "sight":
            conn.execute("INSERT INTO sightings(ts, visitor, device, visit_id, x, y, accuracy_m, zone) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
        elif kind == "door":
            conn.execute("INSERT OR IGNORE INTO door_events VALUES (?, ?, ?, ?, ?)", row)
        else:
            seq += 1
            vid, visitor, device, customer, start, end, passerby = row
            closing = kind == "close"
            conn.execute("INSERT OR REPLACE INTO visits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (vid, visitor, device, customer, start, end if closing else None,
                          end if closing else start, passerby if closing else 0, seq))
    conn.execute("COMMIT")
    return seq


def _replay(conn: sqlite3.Connection, events: list, rollup: Rollup | None) -> float:
    seq = int(conn.execute("SELECT MAX(seq) FROM visits").fetchone()[0] or 0)
    started = time.perf_counter()
    for i in range(0, len(events), BATCH_ROWS):
        seq = _write(conn, events[i:i + BATCH_ROWS], seq)
    return time.perf_counter() - started


def _replay_with_rollup(conn: sqlite3.Connection, events: list, rollup: Rollup) -> tuple[float, float]:
    seq = int(conn.execute("SELECT MAX(seq) FROM visits").fetchone()[0] or 0)
    update_s = 0.0
    started = time.perf_counter()
    for i in range(0, len(events), BATCH_ROWS):
        seq = _write(conn, events[i:i + BATCH_ROWS], seq)
        t = time.perf_counter()
        rollup.update()
        update_s += time.perf_counter() - t
    return time.perf_counter() - started, update_s


async def _latencies(db: Path, params: AnalyticsParams, end: date, days: int, requests: int) -> list[Figure]:
    app = web.Application()
    app.add_routes(stats.routes)
    stats.install(app, db, params)
    rng = random.Random(3)
    dates = [(end - timedelta(days=i)).isoformat() for i in range(days)]
    endpoints = {
        "daily": lambda: {"from": dates[-1], "to": dates[0]},
        "zones": lambda: {"date": rng.choice(dates)},
        "hourly": lambda: {"date": rng.choice(dates)},
        "visitors": lambda: {"date": rng.choice(dates), "limit": 100, "offset": rng.randrange(0, 3000, 100)},
        "dwell": lambda: {"date": rng.choice(dates)},
        "loyalty": lambda: {"date": rng.choice(dates)},
    }
    figures: list[Figure] = []
    async with TestServer(app) as server, TestClient(server) as client:
        await (await client.get("/api/stats/range")).read()  # first request opens the worker's connection
        for name, make in endpoints.items():
            timings: list[float] = []
            for _ in range(requests):
                t = time.perf_counter()
                resp = await client.get(f"/api/stats/{name}", params=make())
                await resp.read()
                timings.append((time.perf_counter() - t) * 1000)
                assert resp.status == 200, name
            timings.sort()
            p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
            figures.append(Figure(f"analytics.{name}.p99_ms", round(p99, 2), "ms", target="<= 50",
                                  note=f"median {statistics.median(timings):.2f} ms over {requests} requests"))
    return figures
