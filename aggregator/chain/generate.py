"""Synthetic chain history (``floorwalker-aggregator generate --stores N``) in the shipping layout.

Each store's traffic comes from the single-store generator (aggregator.analytics.generator) and is
shaped into chain rows by the shipper's own code (:meth:`aggregator.chain.rows.ChainRows.shape`),
batched and named as :class:`~aggregator.shipping.ChainShipper` does, so the files are byte for byte
what the store would ship from its database (tests/chain/test_generate_stores.py checks it), without
writing every sighting to SQLite first and without fsyncs: ~0.6 s of CPU a store of 7 days x 1,000
visits instead of ~1.8 s plus ~400 fsyncs (200 such stores: 135 s on 2 cores, 8 min when they are
busy; ~100 min before).
``keep_dbs`` goes the long way, through a real database and the real shipper, since it keeps the
databases. Stores are generated side by side, one process each (``jobs``). Stores differ in size
(0.4x to 1.6x the requested visits per day, drawn from the seed); the loyalty customers of
customers.json shop in every store, so some people visit several stores and the chain must count
them once.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from agent.config import ChainShipping, StoreConfig
from aggregator.analytics.definitions import AnalyticsParams
from aggregator.analytics.generator import generate, generate_days
from aggregator.analytics.rollup import Rollup
from aggregator.analytics.schema import connect, ensure_core_tables
from aggregator.chain.layout import PartWriter, part_name, partition_dir
from aggregator.chain.rows import ChainRows
from aggregator.shipping import ChainShipper

# Store sizes relative to --visits-per-day: a chain has small and large stores.
SIZE_RANGE = (0.4, 1.6)
STORES_DIR = "_stores"  # under the chain directory; Flink's file source skips names starting with _
BATCH_ROWS = 50_000  # visits per shipping batch (one part file per partition and batch)


@dataclass(frozen=True, slots=True)
class ChainResult:
    stores: int
    visits: int
    shipped_visits: int
    shipped_zone_visits: int


def store_ids(n: int) -> list[str]:
    return [f"store-{i + 1:03d}" for i in range(n)]


def generate_chain(chain_dir: Path, *, store: StoreConfig, stores: int, days: int, visits_per_day: int,
                   seed: int, end_day: date | None, chain_key: str, customer_ids: Sequence[str] = (),
                   keep_dbs: bool = False, progress: Callable[[int], None] | None = None,
                   jobs: int | None = None) -> ChainResult:
    """Write ``stores`` stores' ``days`` days into ``chain_dir``; with ``keep_dbs`` their databases
    stay in ``chain_dir/_stores/<id>.db`` with their roll-ups (what each store's /api/stats serves).
    ``jobs`` processes (default: one per CPU) generate stores side by side; the output does not
    depend on it."""
    rng = random.Random(seed)
    tasks = [_StoreTask(chain_dir, store, store_id, days, max(1, round(visits_per_day * rng.uniform(*SIZE_RANGE))),
                        seed * 10_007 + i, end_day, chain_key, tuple(customer_ids), keep_dbs)
             for i, store_id in enumerate(store_ids(stores))]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    totals = [0, 0, 0]

    def add(counts: tuple[int, int, int]) -> None:
        for k in range(3):
            totals[k] += counts[k]
        if progress:
            progress(1)

    if jobs == 1:
        for task in tasks:
            add(_generate_store(task))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for counts in pool.map(_generate_store, tasks):
                add(counts)
    return ChainResult(stores, *totals)


@dataclass(frozen=True, slots=True)
class _StoreTask:
    chain_dir: Path
    store: StoreConfig
    store_id: str
    days: int
    visits_per_day: int
    seed: int
    end_day: date | None
    chain_key: str
    customer_ids: tuple[str, ...]
    keep_dbs: bool


def _generate_store(t: _StoreTask) -> tuple[int, int, int]:
    """One store: (visits generated, visits shipped, zone visits shipped)."""
    if t.keep_dbs:
        return _through_database(t, t.chain_dir / STORES_DIR)
    return _direct(t)


def _through_database(t: _StoreTask, db_dir: Path) -> tuple[int, int, int]:
    config = ChainShipping(directory=t.chain_dir, key=t.chain_key, batch_rows=BATCH_ROWS)
    db_dir.mkdir(parents=True, exist_ok=True)
    db_path = db_dir / f"{t.store_id}.db"
    conn = connect(db_path)
    try:
        ensure_core_tables(conn)
        result = generate(conn, plan=t.store.plan, entrance=t.store.entrance, timezone=t.store.timezone,
                          days=t.days, visits_per_day=t.visits_per_day, seed=t.seed, end_day=t.end_day,
                          customer_ids=t.customer_ids)
        Rollup(conn, AnalyticsParams(timezone=t.store.timezone)).recompute()
    finally:
        conn.close()
    shipper = ChainShipper(db_path, t.store_id, t.store.timezone, config)
    try:
        shipper.ship_once()
    finally:
        shipper.close()
    return result.visits, shipper.stats.visits, shipper.stats.zone_visits


def _direct(t: _StoreTask) -> tuple[int, int, int]:
    """The generated rows shaped and written as the shipper would from the database: visits in seq
    order (the generator's seq starts at 1 in an empty database), batches of BATCH_ROWS visits, a
    visit's sightings in the order they were inserted."""
    visits: list[tuple] = []
    sightings: dict[str, list[tuple]] = {}
    for day_visits, day_sightings, _doors, _links in generate_days(
            plan=t.store.plan, entrance=t.store.entrance, timezone=t.store.timezone, days=t.days,
            visits_per_day=t.visits_per_day, seed=t.seed, end_day=t.end_day, customer_ids=t.customer_ids):
        # visits columns: visit_id, visitor, device, customer_id, start_ts, end_ts, last_seen_ts, passerby, seq
        visits.extend((v[0], v[1], v[3], v[4], v[5], v[6], v[7], v[8]) for v in day_visits)
        for ts, visitor, _device, visit_id, _x, _y, _acc, zone in day_sightings:
            sightings.setdefault(visit_id, []).append((visit_id, visitor, ts, zone))
    visits.sort(key=lambda v: v[7])
    rows = ChainRows(t.store_id, t.store.timezone, t.chain_key.encode("utf-8"))
    writer = PartWriter(sync=False)
    shipped = zone_visits = 0
    after_seq = 0
    for i in range(0, len(visits), BATCH_ROWS):
        chunk = visits[i:i + BATCH_ROWS]
        batch = rows.shape(chunk, lambda ids: [s for v in ids for s in sightings.get(v, ())])
        name = part_name(after_seq + 1, chunk[-1][7])
        for kind, parts in (("visits", batch.visits), ("zone_visits", batch.zone_visits)):
            for (day, hour), part in sorted(parts.items()):
                writer.write(partition_dir(t.chain_dir, kind, t.store_id, day, hour) / name, part)
        shipped += sum(len(r) for r in batch.visits.values())
        zone_visits += sum(len(r) for r in batch.zone_visits.values())
        after_seq = chunk[-1][7]
    return len(visits), shipped, zone_visits
