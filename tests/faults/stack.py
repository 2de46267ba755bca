"""A store in miniature for fault tests: mosquitto, ``floorwalker-aggregator serve`` and
``floorwalker-agent run`` as real processes, a pseudo-terminal sniffer, and readers for what the
aggregator stored (its SQLite ``messages`` table) and what it says about the agent (``/api/agents``).

Every fault test counts with the agent's own message ids (``<agent>:<seq>``): the sequence is
restart-safe, so the set of ids the agent made is known from outside and can be compared with the
set the aggregator stored.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from aggregator.embedded_broker import Broker, free_port
from tests.agent.agentproc import agent_env, start_agent, stop_agent
from tests.agent.helpers import REPO, write_device
from tests.agent.ptys import FakeSniffer
from tests.conftest import wait_for

AGENT_ID = "agent-t"
POLL_S = 0.1  # conditions here ask the aggregator over HTTP or open its SQLite file: ten times a second will do
__all__ = ["AGENT_ID", "POLL_S", "Store", "probe_lines", "wait_for"]


def probe_lines(first: int, count: int, *, rssi: int = -55) -> bytes:
    """Two probe requests (``min_sightings = 2``) from each of ``count`` distinct globally administered MACs."""
    out = []
    for i in range(first, first + count):
        mac = f"a4:83:e7:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
        line = json.dumps({"rssi": rssi, "addr2": mac, "subtype": "ProbeReq", "ch": 6}).encode() + b"\n"
        out.append(line * 2)
    return b"".join(out)


class Store:
    """Broker + aggregator + one agent with one pty sniffer; everything stopped by :meth:`close`."""

    def __init__(self, tmp: Path, config_dir: Path, broker_factory: Callable[..., Broker], *,
                 spool_max: int = 100_000) -> None:
        self.tmp = tmp
        self.broker_factory = broker_factory
        self.broker_port = free_port()
        self.broker_dir = tmp / "broker"
        self.http_port = free_port()
        self.db = tmp / "aggregator.db"
        self.spool = tmp / "spool.sqlite"
        self.agent_log = tmp / "agent.log"
        self.aggregator_log = tmp / "aggregator.log"
        self.sniffer = FakeSniffer(tmp / "ttyUSB0")
        device = write_device(config_dir, agent_id=AGENT_ID, serial_port=self.sniffer.port, port=self.broker_port,
                              spool=self.spool)
        if spool_max != 100_000:
            device.write_text(device.read_text().replace("max_messages = 100000", f"max_messages = {spool_max}"))
        self.device = device
        self.broker: Broker | None = None
        self.aggregator: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ processes

    def start_broker(self) -> None:
        from tests.agent.helpers import persistent_broker_conf

        self.broker = self.broker_factory(port=self.broker_port, workdir=self.broker_dir,
                                          extra_conf=persistent_broker_conf())

    def stop_broker(self) -> None:
        assert self.broker is not None
        self.broker.stop()
        self.broker = None

    def start_aggregator(self) -> None:
        env = dict(os.environ, MQTT_HOST="127.0.0.1", MQTT_PORT=str(self.broker_port),
                   MQTT_CLIENT_ID="agg-faults", FLOORWALKER_CONFIG_DIR=str(REPO / "firmware-config"),
                   LOG_LEVEL="INFO")
        env.pop("FLOORWALKER_API_TOKEN", None)
        with open(self.aggregator_log, "ab") as out:
            self.aggregator = subprocess.Popen(
                [sys.executable, "-m", "aggregator.cli", "serve", "--port", str(self.http_port), "--db", str(self.db)],
                cwd=REPO, env=env, stdout=out, stderr=out)
        wait_for(lambda: self._healthy(), 30, "the aggregator to be healthy", POLL_S)

    def start_agent(self) -> None:
        self.agent = start_agent("run", "--config", str(self.device), env=agent_env(self.broker_port),
                                 stderr_path=self.agent_log)

    def kill_agent(self) -> None:
        assert self.agent is not None
        stop_agent(self.agent, kill=True)
        self.agent = None

    def close(self) -> None:
        if self.agent is not None:
            stop_agent(self.agent)
        if self.aggregator is not None and self.aggregator.poll() is None:
            self.aggregator.send_signal(signal.SIGTERM)
            try:
                self.aggregator.wait(15)
            except subprocess.TimeoutExpired:
                self.aggregator.kill()
                self.aggregator.wait()
        self.sniffer.close()
        if self.broker is not None:
            self.broker.stop()

    # ------------------------------------------------------------------ what the aggregator says

    def _get(self, path: str) -> object:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=2) as resp:
            return json.loads(resp.read())

    def _healthy(self) -> bool:
        assert self.aggregator is not None
        assert self.aggregator.poll() is None, f"the aggregator exited: {self.aggregator_log.read_text()[-2000:]}"
        try:
            body = self._get("/health")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return isinstance(body, dict) and body.get("broker_connected") is True

    def agent_health(self) -> dict:
        """The agent's last health report as the aggregator shows it in ``/api/agents`` ({} if none yet)."""
        try:
            body = self._get("/api/agents?limit=100")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return {}
        for item in body["items"]:  # type: ignore[index]
            if item.get("agent") == AGENT_ID:
                return item.get("health") or {}
        return {}

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        if not self.db.exists():
            return []
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def stored_seqs(self) -> list[int]:
        """Sequence numbers of every agent message the aggregator stored (duplicates would show twice)."""
        return [int(m.rsplit(":", 1)[1]) for (m,) in self.rows("SELECT msg_id FROM messages WHERE agent = ?",
                                                                 (AGENT_ID,))]

    def settled(self, timeout_s: float = 20.0) -> None:
        """A barrier instead of a fixed wait for late arrivals: wait until a health report the agent made
        after this call (one a second, ``health_interval_s = 1``) is committed. One publisher's messages
        reach the aggregator in order and its writer commits in arrival order, so by then everything
        the agent had made before (a late duplicate, a last enter) is stored, or never will be."""
        after = time.time()
        wait_for(lambda: self.rows("SELECT COUNT(*) FROM messages WHERE agent = ? AND kind = 'health' AND ts > ?",
                                   (AGENT_ID, after)) not in ([], [(0,)]),
                 timeout_s, "a health report made after now to be stored", POLL_S)

    def enters(self) -> list[str]:
        return [d for (d,) in self.rows("SELECT device FROM messages WHERE agent = ? AND kind = 'enter'", (AGENT_ID,))]

    def spooled_seqs(self) -> list[int]:
        if not self.spool.exists():
            return []
        conn = sqlite3.connect(f"file:{self.spool}?mode=ro", uri=True, timeout=10)
        try:
            return [s for (s,) in conn.execute("SELECT seq FROM spool ORDER BY seq")]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()
