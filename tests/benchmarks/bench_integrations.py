"""Integrations: what a /metrics scrape costs the event loop, and what the customer tier's routing costs per event.

A scrape runs on the aggregator's loop (prometheus_client reads the live counters and /proc), so
its time is time the loop does not ingest. The customer tier decides per event whether a shopper is
a known customer (integer id on ``customer/*``) or anonymous (the store's shopper topic).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from agent.config import CustomerTierConfig
from agent.contract import CustomerTopics
from aggregator.app import create_app
from aggregator.appkeys import INGEST
from aggregator.customer_tier import CustomerTier
from aggregator.ingest import AgentState
from aggregator.metrics import METRICS
from aggregator.mqtt_link import NullPublisher
from aggregator.settings import Settings
from tests.benchmarks.figures import Figure

REPO = Path(__file__).resolve().parents[2]


def _scrape_ms(repeats: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(Settings(), config_dir=REPO / "firmware-config", db_path=Path(tmp) / "bench.db",
                           mqtt_enabled=False)
        app = create_app(settings)
        ingest = app[INGEST]
        for i in range(20):  # a store's worth of agents and rejection reasons
            ingest.agents[f"agent-{i}"] = AgentState(f"agent-{i}")
        ingest.counters.rejected.update(Counter({"not-json": 3, "bad-topic": 2, "missing-field": 7}))
        metrics = app[METRICS]
        for _ in range(20):
            metrics.committed(0.01, 0.5)
        times = []
        size = 0
        for _ in range(repeats):
            t = time.perf_counter()
            size = len(metrics.exposition())
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times), size


def _tier_us(known: bool, events: int) -> float:
    tier = CustomerTier(NullPublisher(), CustomerTopics(), store_id="demo", config=CustomerTierConfig(),
                        min_interval_s=0.0, min_px=0.0)
    tier.know({str(i): {} for i in range(1, 47)})
    visitor = "7" if known else "d-9f86d081884c7d65"
    t = time.perf_counter()
    for i in range(events):
        tier.move(visitor, 1795435593.0 + i, 100.0 + (i % 50) * 30, 200.0)
    return (time.perf_counter() - t) / events * 1e6


def run(args: argparse.Namespace) -> Iterator[Figure]:
    quick = getattr(args, "quick", False)
    ms, size = _scrape_ms(50 if quick else 300)
    yield Figure("integrations.metrics_scrape_ms", round(ms, 3), "ms", note=f"median, {size:,} bytes of exposition")
    events = 20_000 if quick else 200_000
    yield Figure("integrations.tier_move_us.known_customer", round(_tier_us(True, events), 2), "µs",
                 note="integer id, customer/move")
    yield Figure("integrations.tier_move_us.anonymous", round(_tier_us(False, events), 2), "µs",
                 note="hashed id, floorwalker/<store>/shopper/move")
