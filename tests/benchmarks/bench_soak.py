"""Compressed soak: does resident memory level off while shoppers come and go at a high rate?

Method: a real mosquitto, ``floorwalker-aggregator serve`` as a subprocess with its own SQLite
file, one mock agent (``floorwalker-agent mock``, the real agent fed by a simulated store) as a
subprocess, and a load generator in this process publishing agent-tier enter / move / exit
reports (QoS 1) for ever-new device ids as agents 2-4 would: each shopper enters, walks for 20 s
and leaves, new ones arrive all the time. The RSS (``/proc/PID/status`` VmRSS) of the aggregator
and the agent (and of the aggregator's SQLite writer process) is sampled every few seconds.
Growth = mean of the last third of the samples minus mean of the first third (warm-up included);
late growth, which carries the target, = last third minus middle third. ``soak.lost`` = generated
messages missing from the ``messages`` table.

The rate is the highest the aggregator sustains (:class:`RateControl`): every few seconds the
backlog (messages published minus messages the aggregator has ingested, from ``/api/agents``) is
read; the rate ramps up while the backlog stays under a second's worth, and is cut to below the
measured ingest rate once it does not, then held (nudged down if the backlog keeps growing, up if
it stays empty). ``SOAK_RATE`` fixes the rate instead.

``--quick``: 30 s; otherwise 180 s (``SOAK_DURATION_S`` overrides). ``SOAK_SAMPLES=FILE`` writes
every sample (seconds, aggregator MB, agent MB, shoppers in the store, target rate) as CSV.
``SOAK_TRACEMALLOC=DIR`` runs the aggregator under tests/benchmarks/traced_aggregator.py and keeps
its heap reports in DIR (one every ``SOAK_TRACEMALLOC_EVERY_S``, default 60 s); RSS is then
inflated by tracemalloc's own books.
"""

from __future__ import annotations

import json
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


def children_rss_mb(pid: int) -> float | None:
    """Summed RSS of a process's children (the aggregator's SQLite writer, MQTT connection and roll-up processes)."""
    total, found = 0.0, False
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids = task.read_text().split()
        except OSError:
            continue
        for kid in kids:
            mb = rss_mb(int(kid))
            if mb is not None:
                total, found = total + mb, True
    return total if found else None


def growth_mb(samples: list[float], *, late: bool = False) -> float | None:
    """Mean of the last third minus mean of the first third (``late``: minus the middle third)."""
    if len(samples) < 3:
        return None
    third = max(1, len(samples) // 3)
    base = samples[third:2 * third] if late else samples[:third]
    return round(sum(samples[-third:]) / third - sum(base) / len(base), 2)


class Load:
    """Shoppers coming and going, ``rate`` messages/s in total: enter, ~WALK_STEPS moves 1 s apart, exit.

    The rate sets how many shoppers are in the store (each one's agents report it once a second),
    so a new rate takes effect at once: more shoppers walk in now, or fewer replace those leaving.
    Walks last 10-30 s, so arrivals and departures spread out instead of moving in cohorts."""

    def __init__(self, host: str, port: int, rate_msgs_s: float) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"soak-{uuid.uuid4().hex[:6]}")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()
        self.rate_msgs_s = rate_msgs_s
        self.active_shoppers = 0
        self.visits = 0
        self.sent = 0
        self.seq = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="soak-load", daemon=True)

    def set_rate(self, rate_msgs_s: float) -> None:
        self.rate_msgs_s = rate_msgs_s

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
        # One report per agent per second while in the store, plus the exit: (L + 2) / (L + 1) per second.
        per_shopper_s = len(GEN_AGENTS) * (WALK_STEPS + 2) / (WALK_STEPS + 1)
        while not self.stop.is_set():
            now = time.monotonic()
            for _ in range(round(self.rate_msgs_s / per_shopper_s) - len(active)):
                self.visits += 1
                device = f"d-soak-{self.visits}"
                x, y = rng.uniform(450, 900), rng.uniform(400, 800)
                steps = rng.randint(WALK_STEPS // 2, WALK_STEPS * 3 // 2)
                active[device] = [now + rng.uniform(0.05, 1.0), steps, x, y]
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
            self.active_shoppers = len(active)
            self.stop.wait(0.05)
        for device, st in active.items():  # everyone leaves at closing time
            self._emit("exit", device, st[2], st[3])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.client.loop_stop()
        self.client.disconnect()


def ingested(http_port: int) -> int | None:
    """Messages of the generated agents the aggregator has ingested so far (``/api/agents``)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/agents?limit=100", timeout=5) as resp:
            items = json.load(resp)["items"]
    except (OSError, ValueError, KeyError):
        return None
    return sum(a["messages"] for a in items if a["agent"] in GEN_AGENTS)


class RateControl:
    """Keep the load at the highest rate the aggregator ingests without a growing backlog.

    Ramp: +15 % per tick while the backlog is under ``ramp_s`` seconds' worth of messages. The
    first tick above that ends the ramp: the rate drops to 85 % of the ingest rate measured in that
    tick (the aggregator's capacity with everything else on the machine running). Hold: -10 % when
    the backlog is over ``high_s`` seconds' worth and still growing; +3 % after ``patience`` quiet
    ticks with the backlog under ``ramp_s`` / 2."""

    def __init__(self, rate: float, *, ramp_s: float = 1.0, high_s: float = 3.0, patience: int = 6) -> None:
        self.rate = rate
        self.ramp_s, self.high_s, self.patience = ramp_s, high_s, patience
        self.ramping = True
        self.capacity: float | None = None
        self.quiet = 0
        self.backlog_max = 0
        self._last: tuple[float, int, int, int] | None = None  # (t, ingested, backlog, sent)
        self.history: list[str] = []

    def tick(self, t: float, sent: int, ingested_now: int) -> float:
        backlog = max(0, sent - ingested_now)
        self.backlog_max = max(self.backlog_max, backlog)
        last, self._last = self._last, (t, ingested_now, backlog, sent)
        if last is None or t <= last[0]:
            return self.rate
        ingest_rate = (ingested_now - last[1]) / (t - last[0])
        sent_rate = (sent - last[3]) / (t - last[0])
        behind_s = backlog / self.rate
        if self.ramping:
            if sent_rate < 0.8 * self.rate:  # the generator, not the aggregator, is the limit
                self.ramping = False
                self.rate = sent_rate
                self.history.append(f"t={t:.0f}s generator-bound at {sent_rate:.0f}")
                return self.rate
            if behind_s < self.ramp_s:
                self.rate *= 1.15
                return self.rate
            self.ramping = False
            self.capacity = ingest_rate
            self.rate = max(100.0, 0.85 * ingest_rate)
            self.history.append(f"t={t:.0f}s capacity~{ingest_rate:.0f} hold at {self.rate:.0f}")
            return self.rate
        if behind_s > self.high_s and backlog > last[2]:
            self.rate *= 0.9
            self.quiet = 0
            self.history.append(f"t={t:.0f}s backlog {backlog} -> {self.rate:.0f}")
        elif behind_s < self.ramp_s / 2:
            self.quiet += 1
            if self.quiet >= self.patience:
                self.rate *= 1.03
                self.quiet = 0
                self.history.append(f"t={t:.0f}s quiet -> {self.rate:.0f}")
        else:
            self.quiet = 0
        return self.rate


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
    duration_s, rate, every_s = (30.0, 500.0, 1.0) if quick else (180.0, 1000.0, 3.0)
    duration_s = float(os.environ.get("SOAK_DURATION_S", duration_s))  # a longer soak without editing
    fixed_rate = os.environ.get("SOAK_RATE")
    control = None if fixed_rate else RateControl(rate)
    rate = float(fixed_rate) if fixed_rate else rate
    control_every_s = 5.0
    heap_dir = os.environ.get("SOAK_TRACEMALLOC")
    heap_every_s = float(os.environ.get("SOAK_TRACEMALLOC_EVERY_S", 60))
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
            command = ([sys.executable, str(HERE / "traced_aggregator.py"), str(Path(heap_dir).resolve())]
                       if heap_dir else [sys.executable, "-m", "aggregator.cli"])
            agg = subprocess.Popen([*command, "serve", "--port", str(http_port), "--db", str(db)], cwd=REPO, env=env,
                                   stdout=log, stderr=log)
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
        writer_rss: list[float] = []
        agent_rss: list[float] = []
        shoppers: list[int] = []
        samples_file = os.environ.get("SOAK_SAMPLES")
        samples: list[str] = ["t_s,aggregator_mb,agent_mb,shoppers,rate_msgs_s,writer_mb"]
        started = time.monotonic()
        next_control = next_heap = started
        while time.monotonic() - started < duration_s:
            now = time.monotonic()
            a, b = rss_mb(agg.pid), rss_mb(agent.pid)
            if a is None or agg.poll() is not None:
                raise RuntimeError("the aggregator died during the soak")
            agg_rss.append(a)
            w = children_rss_mb(agg.pid)
            if w is not None:
                writer_rss.append(w)
            if b is not None and agent.poll() is None:
                agent_rss.append(b)
            shoppers.append(load.active_shoppers)
            samples.append(f"{now - started:.0f},{a:.1f},{b or 0:.1f},{load.active_shoppers},"
                           f"{load.rate_msgs_s:.0f},{w or 0:.1f}")
            if control is not None and now >= next_control:
                next_control = now + control_every_s
                got = ingested(http_port)
                if got is not None:
                    load.set_rate(control.tick(now - started, load.sent, got))
            if heap_dir and now >= next_heap:
                next_heap = now + heap_every_s
                agg.send_signal(signal.SIGUSR1)
            time.sleep(every_s)
        elapsed = time.monotonic() - started
        if samples_file:
            Path(samples_file).write_text("\n".join(samples) + "\n")
        if heap_dir:
            agg.send_signal(signal.SIGUSR1)
        load.close()
        sent, load_visits = load.sent, load.visits
        load = None
        deadline = time.monotonic() + 120  # the backlog of the last seconds drains first
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
        how = (f"fixed rate {rate:.0f} msg/s" if control is None else
               f"adaptive; {'; '.join(control.history) or 'still ramping at the end'}; backlog max "
               f"{control.backlog_max} msgs")
        yield Figure("soak.rate_msgs_per_s", round(sent / elapsed, 1), "msg/s", None, None,
                     f"{note}; {how}; {sum(shoppers) / max(1, len(shoppers)):.0f} shoppers in the store on average, "
                     f"{load_visits} visits")
        if control is not None:
            yield Figure("soak.capacity_msgs_per_s", None if control.capacity is None else round(control.capacity, 1),
                         "msg/s", None, None, "ingest rate when the ramp's backlog first passed 1 s")
            yield Figure("soak.final_rate_msgs_per_s", round(control.rate, 1), "msg/s", None, None,
                         "the controller's rate at the end")
        # Levelling off is judged after the warm-up (per-shopper state and the 200,000-id dedup
        # window, ~22 MB, fill in the first minutes): last third against the middle third. The
        # first-to-last figure is kept, without a target, to show the size of the warm-up.
        yield Figure("soak.aggregator_rss_growth_mb", growth_mb(agg_rss), "MB", None, None,
                     f"{note}; last third minus first third, warm-up included")
        yield Figure("soak.aggregator_rss_late_growth_mb", growth_mb(agg_rss, late=True), "MB", "<= 5", None,
                     "last third minus middle third: still growing at the end?")
        yield Figure("soak.aggregator_rss_max_mb", round(max(agg_rss), 1), "MB")
        if writer_rss:
            yield Figure("soak.writer_rss_late_growth_mb", growth_mb(writer_rss, late=True), "MB", "<= 5", None,
                         "the aggregator's child processes (SQLite writer + MQTT connection + roll-ups), summed: "
                         "last third minus middle third")
            yield Figure("soak.writer_rss_max_mb", round(max(writer_rss), 1), "MB")
        yield Figure("soak.agent_rss_growth_mb", growth_mb(agent_rss), "MB", "<= 5", None, note)
        yield Figure("soak.agent_rss_late_growth_mb", growth_mb(agent_rss, late=True), "MB", None, None,
                     "last third minus middle third")
        yield Figure("soak.agent_rss_max_mb", round(max(agent_rss), 1) if agent_rss else None, "MB")
        yield Figure("soak.lost", sent - stored, "msgs", "== 0", None, f"{sent} published, {stored} stored")
    finally:
        if load is not None:
            load.close()
        for proc in reversed(procs):
            _stop(proc)
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
