"""Publish -> WebSocket latency at 1,000 messages/s through a real mosquitto and a real aggregator process.

A paced publisher sends presence reports (500 shoppers, 4 agents, each report stamped with its
publish time as ``ts``); the aggregator runs as ``floorwalker-aggregator serve`` in its own process;
a WebSocket client on ``/ws/movement`` takes, for every ``move`` event, receive time minus the
event's ``ts`` (the newest report that went into that fix). Same machine, same clock. The first
second is warm-up and not counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import paho.mqtt.client as mqtt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from aggregator.embedded_broker import free_port, start_mosquitto  # noqa: E402
from tests.aggregator import agents  # noqa: E402
from tests.benchmarks.figures import Figure  # noqa: E402
from tests.conftest import CONFIG_DIR, REPO  # noqa: E402

RATE_PER_S = 1000
SHOPPERS = 500
WARMUP_S = 1.0


def _publisher(host: str, port: int, duration_s: float, stop: threading.Event, sent: list[int]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"lat-pub-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    client.connect(host, port)
    client.loop_start()
    started = time.perf_counter()
    i = 0
    try:
        while not stop.is_set():
            due = started + i / RATE_PER_S
            now = time.perf_counter()
            if now - started > duration_s:
                break
            if due > now:
                time.sleep(due - now)
            shopper = i % SHOPPERS
            agent = agents.ALL_AGENTS[(i // SHOPPERS) % 4]
            x = 500.0 + (i % 700)
            topic, payload = agents.presence("move" if i >= SHOPPERS else "enter", agent, i, time.time(),
                                             f"d-lat-{shopper}", x, 700.0)
            client.publish(topic, payload, qos=1)
            i += 1
    finally:
        sent.append(i)
        client.disconnect()
        client.loop_stop()


async def _measure(port: int, broker_host: str, broker_port: int, duration_s: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    stop = threading.Event()
    sent: list[int] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(f"http://127.0.0.1:{port}/ws/movement") as ws:
        thread = threading.Thread(target=_publisher, args=(broker_host, broker_port, duration_s, stop, sent))
        begin = time.time()
        thread.start()
        try:
            while True:
                try:
                    msg = await asyncio.wait_for(ws.receive(), timeout=2.0)
                except TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.time()
                for event in json.loads(msg.data):
                    if event.get("type") == "move" and event["ts"] > begin + WARMUP_S:
                        latencies.append((now - event["ts"]) * 1000.0)
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)
    return latencies, sent[0] if sent else 0


def _wait_healthy(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("aggregator not healthy")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args) -> Iterator[Figure]:  # type: ignore[no-untyped-def]
    duration_s = 4.0 if getattr(args, "quick", False) else 15.0
    workdir = Path(tempfile.mkdtemp(prefix="fw-bench-latency-"))
    broker = start_mosquitto(workdir=workdir / "broker")
    port = free_port()
    env = dict(os.environ, MQTT_HOST=broker.host, MQTT_PORT=str(broker.port),
               MQTT_CLIENT_ID=f"lat-agg-{uuid.uuid4().hex[:6]}", FLOORWALKER_CONFIG_DIR=str(CONFIG_DIR),
               LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "aggregator.cli", "serve", "--port", str(port), "--db",
                             str(workdir / "lat.db")], cwd=REPO, env=env)
    try:
        _wait_healthy(port)
        latencies, sent = asyncio.run(_measure(port, broker.host, broker.port, duration_s))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        broker.stop()
    if not latencies:
        yield Figure("latency.p50_ms", None, note="no move events received")
        return
    note = f"{len(latencies)} move events over {duration_s:.0f} s, {sent} messages at {RATE_PER_S}/s"
    yield Figure("latency.p50_ms", round(_pct(latencies, 0.50), 2), "ms", note=note)
    yield Figure("latency.p99_ms", round(_pct(latencies, 0.99), 2), "ms", "<= 20")
    yield Figure("latency.max_ms", round(max(latencies), 2), "ms")
