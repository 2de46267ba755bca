"""Compressed soak: does resident memory level off while shoppers come and go at a high rate?

Method: a real mosquitto, ``floorwalker-aggregator serve`` as a subprocess with its own SQLite
file, one mock agent (``floorwalker-agent mock``, the real agent fed by a simulated store) as a
subprocess, and a load generator in this process publishing agent-tier enter / move / exit
reports (QoS 1) for ever-new device ids as agents 2-4 would: each shopper enters, walks for 20 s
and leaves, new ones arrive all the time. The RSS (``/proc/PID/status`` VmRSS) of the aggregator
and the agent is sampled every few seconds. Growth = mean of the last third of the samples minus
mean of the first third. ``soak.lost`` = generated messages missing from the ``messages`` table.
``--quick``: 30 s at a lower rate; otherwise 180 s (``SOAK_DURATION_S`` overrides).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from aggregator.embedded_broker import free_port, start_mosquitto  # noqa: E402
from tests.aggregator import agents  # noqa: E402
from tests.benchmarks.figures import Figure  # noqa: E402

GEN_AGENTS = ("agent-2", "agent-3", "agent-4")
WALK_STEPS = 20


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def growth_mb(samples: list[float], *, late: bool = False) -> float | None:
    """Mean of the last third minus mean of the first third (``late``: minus the middle third)."""
    if len(samples) < 3:
        return None
    third = max(1, len(samples) // 3)
    base = samples[third:2 * third] if late else samples[:third]
    return round(sum(samples[-third:]) / third - sum(base) / len(base), 2)


class Load:
    """Shoppers arriving at ``rate`` messages/s in total: enter, WALK_STEPS moves 1 s apart, exit."""

    def __init__(self, host: str, port: int, rate_msgs_s: float) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"soak-{uuid.uuid4().hex[:6]}")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()
        per_shopper = len(GEN_AGENTS) * (WALK_STEPS + 2)
        self.arrivals_per_s = rate_msgs_s / per_shopper
        self.sent = 0
        self.seq = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="soak-load", daemon=True)

    def _emit(self, kind: str, device: str, x: float, y: float) -> None:
        now = time.time()
        for i, agent in enumerate(GEN_AGENTS):
            self.seq += 1
            topic, payload = agents.presence(kind, agent, self.seq, now + 0.01 * i, device, x, y)
            self.client.publish(topic, payload, qos=1)
            self.sent += 1

    def _run(self) -> None:
        rng = random.Random(7)
        active: dict[str, list[float]] = {}  # device -> [next_ts, steps_left, x, y]
        n = 0
        debt = 0.0
        last = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            debt += (now - last) * self.arrivals_per_s
            last = now
            while debt >= 1:
                debt -= 1
                n += 1
                device = f"d-soak-{n}"
                x, y = rng.uniform(450, 900), rng.uniform(400, 800)
                active[device] = [now + 1, WALK_STEPS, x, y]
                self._emit("enter", device, x, y)
            for device, st in list(active.items()):
                if st[0] > now:
                    continue
                if st[1] <= 0:
                    self._emit("exit", device, st[2], st[3])
                    del active[device]
                    continue
                st[2] = min(900.0, max(450.0, st[2] + rng.uniform(-40, 40)))
                st[3] = min(800.0, max(400.0, st[3] + rng.uniform(-40, 40)))
                st[0] += 1
                st[1] -= 1
                self._emit("move", device, st[2], st[3])
            self.stop.wait(0.05)
        for device, st in active.items():  # everyone leaves at closing time
            self._emit("exit", device, st[2], st[3])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.client.loop_stop()
        self.client.disconnect()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(args) -> Iterator[Figure]:  # type: ignore[no-untyped-def]
    quick = getattr(args, "quick", False)
    duration_s, rate, every_s = (30.0, 300.0, 1.0) if quick else (180.0, 800.0, 3.0)
    duration_s = float(os.environ.get("SOAK_DURATION_S", duration_s))  # a longer soak without editing
    tmp = Path(tempfile.mkdtemp(prefix="fw-soak-"))
    broker = start_mosquitto(workdir=tmp / "broker")
    procs: list[subprocess.Popen[bytes]] = []
    load: Load | None = None
    try:
        env = dict(os.environ, MQTT_HOST=broker.host, MQTT_PORT=str(broker.port), LOG_LEVEL="WARNING",
                   FLOORWALKER_CONFIG_DIR=str(REPO / "firmware-config"), FLOORWALKER_STATE_DIR=str(tmp / "state"),
                   MQTT_CLIENT_ID="agg-soak")
        env.pop("FLOORWALKER_API_TOKEN", None)
        http_port = free_port()
        db = tmp / "soak.db"
        with open(tmp / "aggregator.log", "ab") as log:
            agg = subprocess.Popen([sys.executable, "-m", "aggregator.cli", "serve", "--port", str(http_port),
                                    "--db", str(db)], cwd=REPO, env=env, stdout=log, stderr=log)
        procs.append(agg)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or agg.poll() is not None:
                raise RuntimeError(f"aggregator did not start; see {tmp / 'aggregator.log'}")
            time.sleep(0.2)
        with open(tmp / "agent.log", "ab") as log:
            agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "mock", "--config",
                                      str(REPO / "firmware-config" / "devices" / "agent-1.toml"), "--shoppers", "40",
                                      "--seed", "3"], cwd=REPO, env=env, stdout=log, stderr=log)
        procs.append(agent)
        load = Load(broker.host, broker.port, rate)
        load.thread.start()
        agg_rss: list[float] = []
        agent_rss: list[float] = []
        started = time.monotonic()
        while time.monotonic() - started < duration_s:
            a, b = rss_mb(agg.pid), rss_mb(agent.pid)
            if a is None or agg.poll() is not None:
                raise RuntimeError("the aggregator died during the soak")
            agg_rss.append(a)
            if b is not None and agent.poll() is None:
                agent_rss.append(b)
            time.sleep(every_s)
        elapsed = time.monotonic() - started
        load.close()
        sent = load.sent
        load = None
        deadline = time.monotonic() + 60
        stored = 0
        while time.monotonic() < deadline:
            conn = sqlite3.connect(db, timeout=10)
            try:
                stored = conn.execute("SELECT COUNT(*) FROM messages WHERE agent != 'agent-1'").fetchone()[0]
            finally:
                conn.close()
            if stored >= sent:
                break
            time.sleep(0.5)
        note = f"{len(agg_rss)} samples every {every_s:.0f} s over {elapsed:.0f} s"
        yield Figure("soak.rate_msgs_per_s", round(sent / elapsed, 1), "msg/s", None, None, note)
        yield Figure("soak.aggregator_rss_growth_mb", growth_mb(agg_rss), "MB", "<= 10", None, note)
        yield Figure("soak.aggregator_rss_late_growth_mb", growth_mb(agg_rss, late=True), "MB", None, None,
                     "last third minus middle third: still growing at the end?")
        yield Figure("soak.aggregator_rss_max_mb", round(max(agg_rss), 1), "MB")
        yield Figure("soak.agent_rss_growth_mb", growth_mb(agent_rss), "MB", "<= 5", None, note)
        yield Figure("soak.agent_rss_max_mb", round(max(agent_rss), 1) if agent_rss else None, "MB")
        yield Figure("soak.lost", sent - stored, "msgs", "== 0", None, f"{sent} published, {stored} stored")
    finally:
        if load is not None:
            load.close()
        for proc in reversed(procs):
            _stop(proc)
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
