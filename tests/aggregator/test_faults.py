"""The aggregator as a real process, killed with SIGKILL mid-stream and restarted: nothing lost, nothing twice."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from aggregator.embedded_broker import Broker, free_port
from tests.aggregator import agents
from tests.conftest import CONFIG_DIR, REPO, wait_for
from tests.mqtt_helpers import publish

pytestmark = [pytest.mark.broker, pytest.mark.faults]


def start_aggregator(broker: Broker, db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, MQTT_HOST=broker.host, MQTT_PORT=str(broker.port), MQTT_CLIENT_ID="agg-fault-test",
               FLOORWALKER_CONFIG_DIR=str(CONFIG_DIR), LOG_LEVEL="INFO")
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "aggregator.cli", "serve", "--port", str(port), "--db", str(db)],
                                cwd=REPO, env=env, stdout=out, stderr=out)


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> dict:  # type: ignore[type-arg]
    body: dict = {}  # type: ignore[type-arg]

    def answers() -> bool:
        assert proc.poll() is None, "the aggregator exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                body.update(json.loads(resp.read()))
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    wait_for(answers, timeout_s, "the aggregator's /health", interval_s=0.1)
    return body


def count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return -1
    finally:
        conn.close()


def test_sigkill_mid_stream_loses_nothing_and_stores_nothing_twice(broker_factory, tmp_path: Path) -> None:
    broker = broker_factory()
    db = tmp_path / "agg.db"
    port = free_port()
    log = tmp_path / "aggregator.log"
    proc = start_aggregator(broker, db, port, log)
    try:
        wait_healthy(port, proc)
        t0 = time.time() - 30
        traffic: list[tuple[str, bytes]] = []
        for i in range(60):  # 60 shoppers x 4 agents x 10 reports = 2,640 messages
            traffic += agents.visit(f"d-fault-{i}", t0 + i * 0.1, seq0=i * 100, path=[(550.0 + i, 600.0)] * 10)
        chunks = [traffic[i:i + 200] for i in range(0, len(traffic), 200)]
        done = threading.Event()

        def publisher() -> None:
            for chunk in chunks:
                publish(broker.host, broker.port, chunk)
                time.sleep(0.05)  # the scenario: a stream over time (the kill must land mid-stream), not one burst
            done.set()

        thread = threading.Thread(target=publisher)
        thread.start()
        with contextlib.suppress(TimeoutError):  # the assertion below says how many were stored
            wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= len(traffic) // 4, 20)
        proc.send_signal(signal.SIGKILL)  # mid-stream: the publisher is still going
        proc.wait(10)
        stored_at_kill = count(db, "SELECT COUNT(*) FROM messages")
        assert 0 < stored_at_kill < len(traffic)
        proc = start_aggregator(broker, db, port, log)
        wait_healthy(port, proc)
        thread.join(30)
        assert done.is_set()
        with contextlib.suppress(TimeoutError):  # the assertion below says how many were stored
            wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= len(traffic), 30, interval_s=0.1)
        # No wait for late redeliveries: msg_id is the PRIMARY KEY (INSERT OR IGNORE), so one cannot add a
        # row; the count below is reached once and stays.
        assert count(db, "SELECT COUNT(*) FROM messages") == len(traffic)
        expected_ids = {json.loads(p)["msg_id"] for _, p in traffic}
        conn = sqlite3.connect(db)
        try:
            stored_ids = {r[0] for r in conn.execute("SELECT msg_id FROM messages")}
            doors_or_dead = conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
            open_visits = conn.execute("SELECT COUNT(*) FROM visits WHERE end_ts IS NULL").fetchone()[0]
        finally:
            conn.close()
        assert stored_ids == expected_ids
        assert doors_or_dead == 0
        assert open_visits == 0  # every shopper's visit closed, also those spanning the crash
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
