"""Shipping closed visits to the chain directory: layout, privacy, exactly once across kills and failures."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import ChainShipping, MqttSettings, StoreConfig
from aggregator.app import create_app
from aggregator.appkeys import LINK
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from aggregator.shipping import CHAIN_SHIPPER, ChainShipper, ShippingFailed, state_path
from tests.aggregator import agents
from tests.aggregator.conftest import wait_until
from tests.chain.conftest import (
    CHAIN_KEY,
    END_DAY,
    make_store_db,
    read_rows,
    remount,
    shipping,
    tmpfs,
    visible_files,
)
from tests.conftest import REPO
from tests.mqtt_helpers import publish


def _ship(db: Path, store: StoreConfig, chain: Path, batch_rows: int = 20_000) -> ChainShipper:
    shipper = ChainShipper(db, "s1", store.timezone, shipping(chain, batch_rows))
    try:
        shipper.ship_once()
    finally:
        shipper.close()
    return shipper


def _closed_visits(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM visits WHERE end_ts IS NOT NULL").fetchone()[0]
    finally:
        conn.close()


def test_every_closed_visit_is_shipped_once_in_order_with_its_partition(tmp_path: Path, store_db: Path,
                                                                         store_config: StoreConfig) -> None:
    chain = tmp_path / "chain"
    shipper = _ship(store_db, store_config, chain, batch_rows=50)
    visits = read_rows(chain, "visits")
    assert len(visits) == len({v["visit"] for v in visits}) == _closed_visits(store_db)
    assert shipper.stats.batches == -(-len(visits) // 50)
    for path in (chain / "visits").rglob("part-*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        store, day, hour = (p.split("=", 1)[1] for p in path.parent.relative_to(chain / "visits").parts)
        assert all(r["store"] == store == "s1" and r["date"] == day and r["hour"] == int(hour) for r in rows)
        assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    zone_visits = read_rows(chain, "zone_visits")
    assert zone_visits and {z["visit"] for z in zone_visits} <= {v["visit"] for v in visits if not v["passerby"]}


def test_ids_are_rekeyed_and_nothing_of_the_store_database_leaks(tmp_path: Path, store_db: Path,
                                                                   store_config: StoreConfig) -> None:
    chain = tmp_path / "chain"
    _ship(store_db, store_config, chain)
    conn = sqlite3.connect(store_db)
    try:
        secrets = {v for row in conn.execute("SELECT visit_id, visitor, device FROM visits") for v in row}
    finally:
        conn.close()
    text = "".join(p.decode() for p in visible_files(chain).values())
    assert not [s for s in secrets if s in text]
    people = {r["person"] for r in read_rows(chain, "visits")}
    other = tmp_path / "other"
    ChainShipper(store_db, "s1", store_config.timezone, ChainShipping(other, "another-chain-key-0000")).ship_once()
    assert people.isdisjoint({r["person"] for r in read_rows(other, "visits")})  # per chain, not per store


def test_resuming_ships_only_what_closed_since(tmp_path: Path, store_config: StoreConfig) -> None:
    db = make_store_db(tmp_path / "s.db", store_config, days=1)
    chain = tmp_path / "chain"
    _ship(db, store_config, chain)
    first = visible_files(chain)
    make_store_db(db, store_config, days=1, seed=2, end_day=END_DAY + timedelta(days=1))  # more traffic, later seqs
    _ship(db, store_config, chain)
    after = visible_files(chain)
    assert {k: after[k] for k in first} == first  # what was shipped is never rewritten
    visits = read_rows(chain, "visits")
    assert len(visits) == len({v["visit"] for v in visits}) == _closed_visits(db)


_SHIP_SCRIPT = """
import sys
from pathlib import Path
from agent.config import ChainShipping
from aggregator.shipping import ChainShipper
db, chain, key = sys.argv[1:4]
ChainShipper(Path(db), "s1", "Europe/Warsaw", ChainShipping(Path(chain), key, 1.0, 7)).ship_once()
"""


def test_sigkill_mid_write_then_resume_gives_exactly_the_files_of_a_clean_run(tmp_path: Path,
                                                                               store_config: StoreConfig) -> None:
    db = make_store_db(tmp_path / "s.db", store_config, days=2, visits_per_day=150)
    reference = tmp_path / "reference"
    ChainShipper(tmp_path / "s.db", "s1", "Europe/Warsaw", shipping(reference, 7)).ship_once()
    state_path(db).unlink()
    chain = tmp_path / "chain"
    kills = 0
    for _attempt in range(3):  # kill it three times at different points, then let it finish
        proc = subprocess.Popen([sys.executable, "-c", _SHIP_SCRIPT, str(db), str(chain), CHAIN_KEY], cwd=REPO)
        deadline = time.monotonic() + 60
        target = len(visible_files(chain)) + 5
        while proc.poll() is None and time.monotonic() < deadline:
            if len(list(chain.rglob("part-*.jsonl"))) >= target:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.005)
        proc.wait(timeout=30)
    assert kills >= 1, "the shipper finished before it could be killed"
    ChainShipper(db, "s1", "Europe/Warsaw", shipping(chain, 7)).ship_once()
    assert visible_files(chain) == visible_files(reference)
    assert not [p for p in chain.rglob("*") if p.name.endswith(".tmp")]


def test_full_disk_fails_clearly_keeps_the_mark_and_resumes_exactly_once(tmp_path: Path, store_db: Path,
                                                                          store_config: StoreConfig) -> None:
    reference = tmp_path / "reference"
    ChainShipper(store_db, "s1", store_config.timezone, shipping(reference, 40)).ship_once()
    state_path(store_db).unlink()
    with tmpfs(tmp_path / "small", size_kb=48) as chain:
        shipper = ChainShipper(store_db, "s1", store_config.timezone, shipping(chain, 40))
        with pytest.raises(ShippingFailed, match="no space left"):
            shipper.ship_once()
        mark = json.loads(state_path(store_db).read_text())
        assert mark["pending_seq"] is not None  # the batch that did not fit is still to do
        remount(chain, "size=16m")
        shipper.ship_once()
        shipper.close()
        assert visible_files(chain) == visible_files(reference)


def test_read_only_chain_directory_is_a_clear_error(tmp_path: Path, store_db: Path,
                                                    store_config: StoreConfig) -> None:
    with tmpfs(tmp_path / "ro", size_kb=1024, read_only=True) as chain:
        shipper = ChainShipper(store_db, "s1", store_config.timezone, shipping(chain))
        with pytest.raises(ShippingFailed, match="read-only filesystem"):
            shipper.ship_once()
        shipper.close()


@pytest.mark.broker
async def test_ingest_keeps_going_while_the_chain_directory_is_read_only(aiohttp_client, tmp_path: Path,
                                                                         config_dir: Path, mqtt_broker: Broker,
                                                                         sqlite_path: Path) -> None:
    with tmpfs(tmp_path / "ro", size_kb=1024, read_only=True) as chain:
        store_file = config_dir / "store.toml"
        text = store_file.read_text().replace("ship = false", "ship = true")
        text = text.replace('directory = "/mnt/floorwalker-chain"', f'directory = "{chain}"')
        store_file.write_text(text.replace("interval_s = 60 ", "interval_s = 0.1"))
        settings = replace(Settings(), config_dir=config_dir, db_path=sqlite_path,
                           mqtt=MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port),
                           client_id=f"agg-{tmp_path.name[-12:]}", absence_s=30.0, passerby_s=5.0)
        client = await aiohttp_client(create_app(settings))
        await wait_until(lambda: client.app[LINK].subscribed)
        shipper = client.app[CHAIN_SHIPPER]
        for i in range(3):  # visit after visit is stored while every shipping attempt fails
            traffic = agents.visit(f"d-ro-{i}", time.time() - 60, seq0=i * 1000, step_s=1.0)
            await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, traffic)
            await wait_until(lambda n=i + 1: _closed_visits(sqlite_path) == n, timeout_s=20)
            failures = shipper.stats.failures
            await wait_until(lambda f=failures: shipper.stats.failures > f, timeout_s=20)
        assert "read-only filesystem" in shipper.stats.last_error
        assert shipper.stats.visits == 0
        await client.close()
