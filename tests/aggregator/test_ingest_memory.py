"""Ingest keeps no state for shoppers who left: what the soak benchmark's memory check relies on.

Every per-device and per-visitor structure (open visits, shoppers, device -> visitor, fusion
tracks, dwell stays, the customer tier's move throttle) must empty when visits close, however they
close: every agent's exit, the absence timeout, a loyalty link mid-visit. The message-id window
must stop at ``DEDUP_WINDOW`` ids.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agent.config import load_deployment
from aggregator.bus import EventBus
from aggregator.ingest import Ingest
from aggregator.mqtt_link import Incoming, NullPublisher
from aggregator.recent_ids import RecentIds
from aggregator.settings import Settings
from aggregator.store import Store
from tests.aggregator import agents
from tests.conftest import CONFIG_DIR

DEVICES = load_deployment(CONFIG_DIR)
SHOPPERS = 40
PATH = [(550.0, 600.0), (600.0, 620.0), (650.0, 640.0), (700.0, 660.0)]


def per_shopper_sizes(ingest: Ingest) -> dict[str, int]:
    return {"visits.open": len(ingest.visits.open), "shoppers": len(ingest.shoppers),
            "by_device": len(ingest.by_device), "fusion.tracks": len(ingest.fusion.tracks),
            "dwell": len(ingest.dwell._stays), "tier.last_move": len(ingest.tier._last_move)}


@pytest.fixture
def ingest(sqlite_path: Path):  # type: ignore[no-untyped-def]
    settings = replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path, absence_s=30.0, passerby_s=5.0,
                       dwell_s=1.0)
    store = Store(sqlite_path)
    store.open()
    ingest = Ingest(settings, DEVICES[0].store, DEVICES, store, EventBus(), NullPublisher())
    ingest.load_state()
    yield ingest
    store.close()


def feed(ingest: Ingest, traffic: list[tuple[str, bytes]], slice_size: int = 7) -> None:
    items = [Incoming(t, p, i + 1, 1, time.time()) for i, (t, p) in enumerate(traffic)]
    for start in range(0, len(items), slice_size):  # several slices, as MQTT hands them over
        ingest.handle(items[start:start + slice_size])


def test_shoppers_who_said_goodbye_leave_nothing_behind(ingest: Ingest) -> None:
    t0 = time.time() - 600
    traffic: list[tuple[str, bytes]] = []
    for n in range(SHOPPERS):
        traffic += agents.visit(f"d-leaver-{n}", t0 + n, seq0=n * 100, path=PATH * 3)
    feed(ingest, traffic)
    assert ingest.counters.fixes > 0
    assert per_shopper_sizes(ingest) == dict.fromkeys(per_shopper_sizes(ingest), 0)


def test_shoppers_who_vanished_are_forgotten_by_the_absence_timeout(ingest: Ingest) -> None:
    t0 = time.time() - 600
    traffic: list[tuple[str, bytes]] = []
    for n in range(SHOPPERS):  # no agent ever reports their exit
        traffic += agents.visit(f"d-vanished-{n}", t0 + n, seq0=n * 100, path=PATH * 3)[:-len(agents.ALL_AGENTS)]
    # A later shopper moves the messages' clock well past the absence timeout, then leaves too.
    traffic += agents.visit("d-later", t0 + 300, seq0=10_000, path=PATH)
    feed(ingest, traffic)
    assert len(ingest.visits.open) == SHOPPERS
    ingest.sweep()
    assert per_shopper_sizes(ingest) == dict.fromkeys(per_shopper_sizes(ingest), 0)


def test_a_shopper_linked_mid_visit_leaves_nothing_under_either_id(ingest: Ingest) -> None:
    t0 = time.time() - 600
    visit = agents.visit("d-loyal", t0, path=PATH * 3)
    half = len(visit) // 2
    feed(ingest, [*visit[:half], agents.link("agent-1", 5000, t0 + 5, "d-loyal", "42"), *visit[half:]])
    assert per_shopper_sizes(ingest) == dict.fromkeys(per_shopper_sizes(ingest), 0)
    assert ingest.links == {"d-loyal": "42"}  # the link itself is kept (it is the customer's)


def test_the_message_id_window_stops_at_its_size(ingest: Ingest) -> None:
    ingest._recent = RecentIds(50)  # a small window, so a few visits overflow it
    t0 = time.time() - 600
    traffic: list[tuple[str, bytes]] = []
    for n in range(10):
        traffic += agents.visit(f"d-window-{n}", t0 + n, seq0=n * 100, path=PATH)
    feed(ingest, traffic)
    assert ingest.counters.accepted == len(traffic) > 100
    assert 50 <= len(ingest._recent) <= 100
    feed(ingest, traffic[-50:])  # the last 50 again: remembered, dropped as duplicates
    assert ingest.counters.duplicates == 50


def test_links_not_seen_for_the_retention_period_are_forgotten_here_and_in_the_database(
        ingest: Ingest, sqlite_path: Path) -> None:
    now = time.time()
    day = 86400.0
    feed(ingest, [agents.link("agent-1", 1, now - 40 * day, "d-rotated-away", "41"),  # daily ids: never seen again
                  agents.link("agent-1", 2, now - 40 * day, "d-returning", "43"),
                  agents.link("agent-1", 3, now - 2 * day, "d-recent", "42")])
    feed(ingest, agents.visit("d-returning", now - 300, seq0=100, path=PATH))  # its new visit refreshes the link
    assert ingest.expire_links(now) == 1  # retention: 30 days (the default)
    assert ingest.links == {"d-returning": "43", "d-recent": "42"}
    ingest.store.close()  # the batches above committed; a writer starting now deletes on the same rule
    writer = Store(sqlite_path)
    writer.open()
    writer.close()
    assert writer.stats.retention_deleted >= 1
    conn = sqlite3.connect(sqlite_path)
    try:
        assert dict(conn.execute("SELECT device, customer_id FROM links")) == {"d-returning": "43", "d-recent": "42"}
    finally:
        conn.close()
    assert ingest.expire_links(now + 29 * day) == 1  # 31 days after "d-recent" was linked
    assert ingest.links == {"d-returning": "43"}
