"""Hostile agent-tier traffic through the aggregator's whole ingest pipeline, not just the decoder.

tests/fuzz/test_fuzz_contract.py shows the decoders never raise. This goes further: mutated real
messages, random JSON and random bytes go through :class:`aggregator.ingest.Ingest` (dedup, visits,
fusion/multilateration, dwell, customer tier) into a real SQLite store. Ingest turns an unexpected
exception into an ``internal-error`` dead letter instead of crashing, so a crash here is silent
unless counted: the test asserts there is none, and that every message is accounted for — the
``messages`` rows equal the accepted counter, the ``dead_letters`` rows equal the rejected counters.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.app import _load_config
from aggregator.bus import EventBus
from aggregator.ingest import Ingest
from aggregator.mqtt_link import Incoming, NullPublisher
from aggregator.settings import Settings
from aggregator.store import Store
from tests.aggregator import agents
from tests.conftest import CONFIG_DIR
from tests.fuzz.budget import cases

pytestmark = pytest.mark.fuzz

NOW = time.time()
GOOD = [agents.presence(k, "agent-2", 1, NOW - 5, "d-good", 600.0, 500.0) for k in ("enter", "move", "exit")]
GOOD += [agents.link("agent-1", 2, NOW - 5, "d-good", "3"), agents.door("agent-3", 3, NOW - 5, "in"),
         agents.motion("agent-4", 4, NOW - 5, "Women's", True)]
FIELDS = sorted({k for _, p in GOOD for k in json.loads(p)})
NAMES = ["d-good", "d-other", "agent-1", "agent-2", "3", "AA:BB:CC:DD:EE:FF"]
scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=30) | st.sampled_from(NAMES))
values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=8), scalars, max_size=3)
ranges = st.lists(st.fixed_dictionaries({"sniffer": st.sampled_from(["s1", "s2", "x"]), "x": values, "y": values,
                                         "rssi": values, "d": values}), max_size=3)


@st.composite
def message(draw: st.DrawFn) -> tuple[str, bytes]:
    topic, payload = draw(st.sampled_from(GOOD))
    how = draw(st.sampled_from(["mutate", "mutate", "mutate", "json", "bytes", "as-is"]))
    if how == "bytes":
        return topic, draw(st.binary(max_size=600))
    if how == "json":
        return topic, json.dumps(draw(values), allow_nan=True).encode()
    d = json.loads(payload)
    d["msg_id"] = f"{d['agent']}:{draw(st.integers(1, 10**9))}"  # small ints collide: dedup
    if how == "mutate":
        d.update(draw(st.dictionaries(st.sampled_from([*FIELDS, "ranges"]), values | ranges, max_size=3)))
        if draw(st.booleans()):
            d["ts"] = NOW + draw(st.floats(-4e5, 120, allow_nan=False))
    return topic, json.dumps(d, allow_nan=True).encode()


def _store(path: Path) -> Store:
    """A real store without retention: a mutated ts can be decades old (still a valid message), and
    the writer's first retention pass, 5 s in, deleted such a row before the count (1 in ~1,000)."""
    store = Store(path, retention_days=0)
    store.open()
    return store


def test_ingest_accounts_for_every_hostile_message(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    cfg = replace(Settings(), config_dir=CONFIG_DIR, db_path=tmp_path / "ingest.db", passerby_s=5.0, absence_s=30.0)
    store_config, devices = _load_config(cfg)
    store = _store(cfg.db_path)
    ingest = Ingest(cfg, store_config, devices, store, EventBus(), NullPublisher())
    runs = Counter[str]()
    try:
        @settings(max_examples=cases(2.0), deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(message(), min_size=1, max_size=6), st.booleans())
        def one(batch: list[tuple[str, bytes]], sweep: bool) -> None:
            runs["cases"] += 1
            ingest.handle([Incoming(t, p, i, 1, time.time()) for i, (t, p) in enumerate(batch, 1)])
            if sweep:
                ingest.sweep()
            assert not ingest.counters.rejected.get("internal-error"), "an exception inside ingest"

        one()
    finally:
        store.close()
    c = ingest.counters
    request.node.user_properties.append(("fuzz_cases", runs["cases"]))
    conn = sqlite3.connect(cfg.db_path)
    try:
        stored = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        dead = conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
    finally:
        conn.close()
    print(f"\nfuzz-ingest: {runs['cases']} batches, {c.received} messages: accepted {c.accepted}, "
          f"duplicates {c.duplicates}, rejected {dict(c.rejected)}")
    assert stored == c.accepted
    assert dead == sum(c.rejected.values())
    assert c.received >= c.accepted + dead + c.duplicates  # the rest are status messages
    assert c.accepted > 0 and dead > 0  # the generator reached both sides


def _ingest_one(tmp_path: Path, topic: str, payload: bytes) -> list[tuple[str, bytes | None]]:
    cfg = replace(Settings(), config_dir=CONFIG_DIR, db_path=tmp_path / "one.db")
    store_config, devices = _load_config(cfg)
    store = _store(cfg.db_path)
    try:
        Ingest(cfg, store_config, devices, store, EventBus(), NullPublisher()).handle(
            [Incoming(topic, payload, 1, 1, time.time())])
    finally:
        store.close()
    conn = sqlite3.connect(cfg.db_path)
    try:
        return conn.execute("SELECT reason, payload FROM dead_letters").fetchall()
    finally:
        conn.close()


def test_a_raw_mac_as_device_is_rejected_without_its_payload(tmp_path: Path) -> None:
    topic, payload = GOOD[1]
    bad = json.loads(payload) | {"device": "AA:BB:CC:DD:EE:FF"}
    assert _ingest_one(tmp_path, topic, json.dumps(bad).encode()) == [("raw-mac", None)]


def test_a_raw_mac_in_a_malformed_payload_never_reaches_the_disk(tmp_path: Path) -> None:
    topic, payload = GOOD[1]
    bad = json.loads(payload) | {"device": "AA:BB:CC:DD:EE:FF", "ts": "yesterday"}
    rows = _ingest_one(tmp_path, topic, json.dumps(bad).encode())
    assert len(rows) == 1  # rejected and counted ...
    assert b"AA:BB:CC:DD:EE:FF" not in (rows[0][1] or b"")  # ... but the MAC must not be written down
