"""Synthetic chain history (``floorwalker-aggregator generate --stores N``) in the shipping layout.

Each store's traffic comes from the single-store generator (aggregator.analytics.generator) into a
SQLite file of its own, and reaches the chain directory through the real shipper, so the files
are exactly what stores ship. Stores differ in size (0.4x to 1.6x the requested visits per day,
drawn from the seed); the loyalty customers of customers.json shop in every store, so some people
visit several stores and the chain must count them once.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from agent.config import ChainShipping, StoreConfig
from aggregator.analytics.definitions import AnalyticsParams
from aggregator.analytics.generator import generate
from aggregator.analytics.rollup import Rollup
from aggregator.analytics.schema import connect, ensure_core_tables
from aggregator.shipping import ChainShipper

# Store sizes relative to --visits-per-day: a chain has small and large stores.
SIZE_RANGE = (0.4, 1.6)
STORES_DIR = "_stores"  # under the chain directory; Flink's file source skips names starting with _


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
                   keep_dbs: bool = False, progress: Callable[[int], None] | None = None) -> ChainResult:
    """Write ``stores`` stores' ``days`` days into ``chain_dir``; with ``keep_dbs`` their databases
    stay in ``chain_dir/_stores/<id>.db`` with their roll-ups (what each store's /api/stats serves)."""
    rng = random.Random(seed)
    config = ChainShipping(directory=chain_dir, key=chain_key, batch_rows=50_000)
    totals = [0, 0, 0]
    with tempfile.TemporaryDirectory(prefix="floorwalker-chain-") as scratch:
        db_dir = chain_dir / STORES_DIR if keep_dbs else Path(scratch)
        db_dir.mkdir(parents=True, exist_ok=True)
        for i, store_id in enumerate(store_ids(stores)):
            size = rng.uniform(*SIZE_RANGE)
            db_path = db_dir / f"{store_id}.db"
            conn = connect(db_path)
            try:
                ensure_core_tables(conn)
                result = generate(conn, plan=store.plan, entrance=store.entrance, timezone=store.timezone,
                                  days=days, visits_per_day=max(1, round(visits_per_day * size)),
                                  seed=seed * 10_007 + i, end_day=end_day, customer_ids=customer_ids)
                if keep_dbs:
                    Rollup(conn, AnalyticsParams(timezone=store.timezone)).recompute()
            finally:
                conn.close()
            shipper = ChainShipper(db_path, store_id, store.timezone, config)
            try:
                shipper.ship_once()
            finally:
                shipper.close()
            totals[0] += result.visits
            totals[1] += shipper.stats.visits
            totals[2] += shipper.stats.zone_visits
            if progress:
                progress(1)
    return ChainResult(stores, *totals)
