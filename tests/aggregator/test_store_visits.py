"""Storage retention, absence timeouts, passers-by and once-per-stay browsing, on a real SQLite file."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from pathlib import Path

from agent.config import load_deployment
from aggregator.bus import EventBus
from aggregator.ingest import Ingest
from aggregator.mqtt_link import Incoming, NullPublisher
from aggregator.settings import Settings
from aggregator.store import Batch, Store
from tests.aggregator import agents
from tests.conftest import CONFIG_DIR

DEVICES = load_deployment(CONFIG_DIR)


def _incoming(items: list[tuple[str, bytes]]) -> list[Incoming]:
    return [Incoming(t, p, i + 1, 1, time.time()) for i, (t, p) in enumerate(items)]


def test_retention_deletes_old_raw_rows_and_keeps_visits(sqlite_path: Path) -> None:
    store = Store(sqlite_path, retention_days=1)
    store.open()
    now = time.time()
    old, new = now - 3 * 86400, now - 3600
    batch = Batch(messages=[("a:1", "a", "move", old, "d", "{}"), ("a:2", "a", "move", new, "d", "{}")],
                  sightings=[(old, "v", "d", "v1", 1, 1, 1, None), (new, "v", "d", "v1", 1, 1, 1, None)],
                  visits={"v1": ("v1", "v", "d", None, old, old + 60, old + 60, 1, 1)})
    store.submit(batch)
    store.close()
    store = Store(sqlite_path, retention_days=1)
    store.open()  # the writer deletes what is past retention as it starts
    store.close()
    assert store.stats.retention_deleted == 2
    conn = sqlite3.connect(sqlite_path)
    try:
        assert conn.execute("SELECT msg_id FROM messages").fetchall() == [("a:2",)]
        assert conn.execute("SELECT COUNT(*) FROM sightings").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM visits").fetchone()[0] == 1
    finally:
        conn.close()


def test_absent_shopper_closes_as_passerby_and_browsing_is_reported_once(sqlite_path: Path) -> None:
    settings = replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path, absence_s=1.0, passerby_s=120.0,
                       dwell_s=3.0)
    store = Store(sqlite_path)
    store.open()
    publisher = NullPublisher()
    ingest = Ingest(settings, DEVICES[0].store, DEVICES, store, EventBus(), publisher)
    ingest.load_state()
    t0 = time.time() - 10
    # 10 s in Women's (browsing once), no exit from any agent: the absence timeout must close it.
    traffic = agents.visit("d-absent", t0, path=[(550.0, 600.0)] * 10)[:-4]
    for item in _incoming(traffic):
        ingest.handle([item])
    # The behaviour under test is a timeout: the absence clock (the stream's: the last report's time plus the
    # wall time since) must pass absence_s = 1.0 before a sweep closes the visit. No event to wait on.
    time.sleep(1.2)
    ingest.sweep()
    ingest.sweep()
    store.close()
    # an anonymous shopper: shopper/<kind> (the same publisher also carries the retained occupancy topics)
    kinds = [topic.rsplit("/", 1)[-1] for topic, _ in publisher.published if "/shopper/" in topic]
    assert kinds.count("enter") == 1 and kinds.count("browsing") == 1 and kinds[-1] == "exit"
    conn = sqlite3.connect(sqlite_path)
    try:
        start, end, passerby = conn.execute("SELECT start_ts, end_ts, passerby FROM visits").fetchone()
    finally:
        conn.close()
    assert end is not None and 8.5 < end - start < 10.0  # ends when last heard, not when swept
    assert passerby == 1  # shorter than the 120 s passer-by threshold
    assert not ingest.shoppers
