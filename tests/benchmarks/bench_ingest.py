"""Ingest throughput through a real mosquitto: validated, deduplicated, fused, stored, acknowledged.

Method: a persistent session for the aggregator's client id is created, then N agent-tier
messages (presence reports with ranges of 4 agents for many shoppers, enter ... exit) are queued
in mosquitto by a paho publisher. The aggregator (``create_app``, in this process, with its real
MQTT and SQLite writer processes) then connects and drains the backlog; the clock runs from connect until the
last message is committed and acknowledged. ``mosquitto_sub`` drains the same backlog from its own
persistent session in the same run, as the ceiling: ``ingest.ratio_to_drain`` is ours over theirs.
``ingest.lost`` counts published messages missing from the ``messages`` table.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from agent.config import MqttSettings  # noqa: E402
from agent.contract import agent_subscription  # noqa: E402
from aggregator.embedded_broker import start_mosquitto  # noqa: E402
from tests.aggregator import agents  # noqa: E402
from tests.benchmarks.figures import Figure  # noqa: E402
from tests.conftest import CONFIG_DIR  # noqa: E402

TOPIC_FILTER = "floorwalker/demo/agents/#"


def _traffic(messages: int) -> list[tuple[str, bytes]]:
    """Shoppers walking between zones as all 4 agents report them, in time order (as agents publish)."""
    per_shopper = 4 * 12  # 4 agents x (enter + 10 moves + exit)
    shoppers = max(1, messages // per_shopper)
    timed: list[tuple[float, int, str, bytes]] = []
    t0 = time.time() - 3600
    path = [(500.0 + 40 * i, 500.0 + 25 * i) for i in range(11)]
    seq = 0
    for s in range(shoppers):
        items = agents.visit(f"d-bench-{s}", t0 + s * 0.05, seq0=seq, path=path, step_s=2.0)
        seq += len(items)
        for topic, payload in items:
            timed.append((json.loads(payload)["ts"], len(timed), topic, payload))
    timed.sort()
    return [(topic, payload) for _, _, topic, payload in timed]


def _session(host: str, port: int, client_id: str) -> None:
    """Create a persistent QoS 1 session so the broker queues what is published next."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    subscribed: list[bool] = []
    client.on_subscribe = lambda *a, **k: subscribed.append(True)
    client.connect(host, port)
    client.loop_start()
    client.subscribe(agent_subscription("demo"), qos=1)
    deadline = time.monotonic() + 10
    while not subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()


def _queue(host: str, port: int, traffic: list[tuple[str, bytes]]) -> None:
    """Publish the load (QoS 1, in order) and wait until the broker has acknowledged all of it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    try:
        for start in range(0, len(traffic), 20_000):  # message ids are 16 bits: never 65,536 in flight
            infos = [client.publish(topic, payload, qos=1) for topic, payload in traffic[start:start + 20_000]]
            for info in infos:
                info.wait_for_publish(120)
    finally:
        client.disconnect()
        client.loop_stop()


def _drain_rate(host: str, port: int, traffic: list[tuple[str, bytes]]) -> float:
    client_id = f"drain-{uuid.uuid4().hex[:6]}"
    n = len(traffic)
    # mosquitto_sub's own persistent session, then the backlog, then the timed drain
    subprocess.run(["mosquitto_sub", "-h", host, "-p", str(port), "-q", "1", "-c", "-i", client_id, "-t", TOPIC_FILTER,
                    "-W", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    _queue(host, port, traffic)
    started = time.perf_counter()
    subprocess.run(["mosquitto_sub", "-h", host, "-p", str(port), "-q", "1", "-c", "-i", client_id, "-t", TOPIC_FILTER,
                    "-C", str(n)], stdout=subprocess.DEVNULL, check=True, timeout=600)
    return n / (time.perf_counter() - started)


async def _ingest(settings, n: int) -> tuple[float, tuple]:  # type: ignore[no-untyped-def]
    from aiohttp import web

    from aggregator.app import create_app
    from aggregator.appkeys import INGEST, LINK, STORE

    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    gc_time = _GcTimer()
    gc.callbacks.append(gc_time)
    started = time.perf_counter()
    cpu_started = time.process_time()
    await runner.setup()  # opens the database, connects, starts draining the backlog
    ingest = app[INGEST]
    deadline = time.monotonic() + 600
    samples: list[tuple[float, int]] = [(started, 0)]  # (time, acknowledged so far), every ~0.1 s
    while ingest.counters.acked < n and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        if now - samples[-1][0] >= 0.1:
            samples.append((now, ingest.counters.acked))
    elapsed = time.perf_counter() - started
    samples.append((time.perf_counter(), ingest.counters.acked))
    cpu_s = time.process_time() - cpu_started
    gc.callbacks.remove(gc_time)
    writer_cpu_s = _cpu_of(app[STORE].writer_pid)
    link = app[LINK]
    mqtt_cpu_s = _cpu_of(link.pid if link is not None else None)
    stats = app[STORE].stats
    counters = ingest.counters
    await runner.cleanup()  # the MQTT process's last state comes as it stops: publishes still waiting count
    published = (link.published, link.publish_errors) if link is not None else None
    return elapsed, (counters, stats, cpu_s, writer_cpu_s, mqtt_cpu_s, gc_time, samples, published)


def _slowest_window(samples: list[tuple[float, int]], seconds: float) -> float | None:
    """The lowest rate over any ``seconds``-long stretch of the drain, once the first message is in.

    The whole-drain rate could hide a slow second half (a filling dedup window, WAL growth);
    the slowest window is what the aggregator sustains. None when the drain is shorter than two windows.
    """
    first = next((i for i, (_, acked) in enumerate(samples) if acked > 0), None)
    if first is None:
        return None
    live = samples[max(first - 1, 0):]  # from the last sample before the first acknowledgement
    if live[-1][0] - live[0][0] < 2 * seconds:
        return None
    rates = []
    j = 0
    for t, acked in live:
        while j < len(live) and live[j][0] - t < seconds:
            j += 1
        if j == len(live):
            break
        rates.append((live[j][1] - acked) / (live[j][0] - t))
    return min(rates)


class _GcTimer:
    """A ``gc.callbacks`` hook summing the time the garbage collector runs."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections += 1


def _cpu_of(pid: int | None) -> float | None:
    """User + system CPU seconds of a live process, from /proc (Linux)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(args) -> Iterator[Figure]:  # type: ignore[no-untyped-def]
    if not shutil.which("mosquitto_sub"):
        yield Figure("ingest.msgs_per_s", None, note="mosquitto clients not installed")
        return
    n_target = 20_000 if getattr(args, "quick", False) else 400_000  # ~10 s of drain: two 5 s windows
    n_target = int(os.environ.get("INGEST_MESSAGES", n_target))  # a longer drain without editing
    traffic = _traffic(n_target)
    n = len(traffic)
    workdir = Path(tempfile.mkdtemp(prefix="fw-bench-ingest-"))
    broker = start_mosquitto(workdir=workdir / "broker")
    try:
        drain = _drain_rate(broker.host, broker.port, traffic)
        from aggregator.settings import Settings

        db = workdir / "bench.db"
        settings = replace(Settings(), config_dir=CONFIG_DIR, db_path=db,
                           mqtt=MqttSettings(host=broker.host, port=broker.port), client_id="bench-aggregator",
                           retention_days=0)
        _session(broker.host, broker.port, settings.client_id)
        _queue(broker.host, broker.port, traffic)
        elapsed, measured = asyncio.run(_ingest(settings, n))
        counters, stats, cpu_s, writer_cpu_s, mqtt_cpu_s, gc_time, samples, published = measured
        conn = sqlite3.connect(db)
        stored = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        sightings = conn.execute("SELECT COUNT(*) FROM sightings").fetchone()[0]
        conn.close()
        rate = n / elapsed
        note = (f"{n} msgs; {counters.fixes} fused fixes, {sightings} sightings rows, {stats.commits} commits "
                f"(mean {stats.commit_seconds_sum / max(1, stats.commits) * 1000:.1f} ms)")
        yield Figure("ingest.msgs_per_s", round(rate), "msg/s", ">= 20000", note=note)
        yield Figure("ingest.lost", n - stored, "msgs", "== 0")
        if published is not None:
            yield Figure("ingest.publish_errors", published[1], "msgs", "== 0",
                         note=f"of {published[0]} customer-tier publishes: refused, or still waiting when the "
                              "aggregator stopped after the last commit (its outgoing queue holds 100,000)")
        slowest = _slowest_window(samples, 5.0)
        yield Figure("ingest.slowest_5s_msgs_per_s", None if slowest is None else round(slowest), "msg/s", ">= 20000",
                     note="the lowest rate over any 5 s of the drain (start-up excluded; needs INGEST_MESSAGES "
                          "large enough for two windows): what is sustained")
        # CPU time of the aggregator's process (all its threads) per message: what the pipeline
        # costs, whatever else the machine is doing; wall-clock msgs/s depends on the neighbours.
        yield Figure("ingest.cpu_us_per_msg", round(cpu_s / n * 1e6, 1), "µs",
                     note="the aggregator process's CPU time (event loop, threads, executors) / messages")
        yield Figure("ingest.gc_us_per_msg", round(gc_time.seconds / n * 1e6, 2), "µs",
                     note=f"of which the aggregator's garbage collector ({gc_time.collections} collections)")
        if writer_cpu_s is not None:
            yield Figure("ingest.writer_cpu_us_per_msg", round(writer_cpu_s / n * 1e6, 1), "µs",
                         note="the SQLite writer process's CPU time / messages")
        if mqtt_cpu_s is not None:
            yield Figure("ingest.mqtt_cpu_us_per_msg", round(mqtt_cpu_s / n * 1e6, 1), "µs",
                         note="the MQTT process's CPU time (paho, parsing, decoding, publishing) / messages")
        yield Figure("ingest.drain_msgs_per_s", round(drain), "msg/s", note="mosquitto_sub -q 1, same backlog")
        yield Figure("ingest.ratio_to_drain", round(rate / drain, 3), "")
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
