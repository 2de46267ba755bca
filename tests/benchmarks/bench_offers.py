"""Offer engine throughput with 100,000 shoppers holding a sequence, and the memory each one costs.

``offers.events_per_s``: clicks through ``OfferEngine.process`` (the seed-001 rule, shoppers walking
clothing -> shoes -> another clothing, with page refreshes and resets mixed in) while 100,000
shoppers have a sequence in progress. ``offers.service_events_per_s``: the same through
``OfferService`` (seed-001 log lines, coupon choice, prediction encoding). ``offers.bytes_per_shopper``:
memory the engine keeps per shopper in progress, measured with tracemalloc (user id and item
strings included, since the engine keeps them alive).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from aggregator.offers.coupons import CouponBook
from aggregator.offers.engine import NS_PER_S, Click, OfferEngine
from aggregator.offers.rules import load_rules
from aggregator.offers.service import OfferService
from tests.benchmarks.figures import Figure

ROOT = Path(__file__).resolve().parents[2]
T0_NS = 1_700_000_000 * NS_PER_S
ITEMS = [("C1", "clothing"), ("C2", "clothing"), ("S1", "shoes"), ("C3", "clothing"), ("B1", "books")]


def _start_clicks(n: int) -> Iterator[Click]:
    for i in range(n):
        yield Click(T0_NS + i * 1000, f"shopper-{i:06d}", "C0", "clothing", "F", 30)


def _stream(n_shoppers: int, n_events: int, seed: int) -> list[Click]:
    rng = random.Random(seed)
    out = []
    for j in range(n_events):
        item, category = ITEMS[rng.randrange(len(ITEMS))] if rng.random() < 0.9 else ("C0", "clothing")
        out.append(Click(T0_NS + (n_shoppers + j) * 1000, f"shopper-{rng.randrange(n_shoppers):06d}", item,
                         category, "F", 30))
    return out


def run(args: argparse.Namespace) -> Iterator[Figure]:
    rules = load_rules(ROOT / "firmware-config" / "offers.toml")
    n_shoppers = 10_000 if args.quick else 100_000
    n_events = 50_000 if args.quick else 500_000
    limits = dataclasses.replace(rules.limits, max_shoppers=n_shoppers, idle_s=None)

    tracemalloc.start()
    engine = OfferEngine(rules, limits=limits)
    before, _ = tracemalloc.get_traced_memory()
    for c in _start_clicks(n_shoppers):
        engine.process(c)
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(engine) == n_shoppers
    yield Figure("offers.bytes_per_shopper", round((after - before) / n_shoppers), "B",
                 note=f"{n_shoppers} shoppers in clothes_visited, tracemalloc")

    stream = _stream(n_shoppers, n_events, seed=1)
    engine = OfferEngine(rules, limits=limits)
    for c in _start_clicks(n_shoppers):
        engine.process(c)
    started = time.perf_counter()
    for c in stream:
        engine.process(c)
    elapsed = time.perf_counter() - started
    yield Figure("offers.events_per_s", round(n_events / elapsed), "events/s", target=">= 20000",
                 note=f"{n_shoppers} active shoppers, {engine.counts['offers']} offers, "
                      f"{len(engine)} in progress at the end")

    service = OfferService(rules, CouponBook.load(ROOT / "firmware-config" / "coupons.json"),
                           limits=limits, track_changes=True)
    logging.getLogger("floorwalker.offers").setLevel(logging.WARNING)  # measure the work, not a console
    for c in _start_clicks(n_shoppers):
        service.handle(c)
    service.engine.take_changes()
    service.pending_log.clear()
    started = time.perf_counter()
    for i, c in enumerate(stream):
        service.handle(c, customer_id=c.user)
        if i % 1000 == 999:  # what the app does per batch
            service.engine.take_changes()
            service.pending_log.clear()
    elapsed = time.perf_counter() - started
    yield Figure("offers.service_events_per_s", round(n_events / elapsed), "events/s",
                 note="with log lines, coupon choice, prediction encoding and change tracking")
