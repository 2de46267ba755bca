"""Which MQTT client the MQTT process should run on: the same backlog through each, interleaved.

Each route drains ``bench_ingest``'s backlog (``INGEST_MESSAGES``, 50,000 by default, QoS 1, queued
in a real mosquitto for a persistent session) through a child process that speaks the MQTT
process's protocol, driven by the parent of ``bench_mqtt_child`` (acknowledgements over the
writer's socket after each batch, as a commit sends them; customer-tier publishes at 0.27 a
message). Routes:

* ``product``: :mod:`aggregator.mqtt_process` as it is (since 2026-12-07 the ``mqtt5`` codec in a network
  thread of ours; paho's public API before, measured as ``paho`` in docs/PERFORMANCE.md);
* ``gmqtt`` / ``gmqtt5``: gmqtt 3.1.1 / 5, PUBACK deferred through a future per message
  (:mod:`tests.benchmarks.proto_mqtt_child`);
* ``codec``: the ``mqtt5`` codec with an asyncio protocol of ours (MQTT 5).

Figures per route and round: the child's CPU per message after its first batch (start-up, which
differs by client, is reported on its own). ``MQTT_ROUTES`` (comma-separated) and
``MQTT_ROUTE_ROUNDS`` choose; the order rotates every round. gmqtt is not a dependency (``pip install
gmqtt`` for its routes): a route whose package is missing is skipped. The ``paho`` route of the
PERFORMANCE.md table was the product before the change: ``MQTT_ROUTES=paho`` at commit 171d738.
Not in ``run.py``'s default list: a decision record, runnable by name.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.config import MqttSettings
from aggregator.child_process import PIPE_BYTES, Worker
from aggregator.embedded_broker import start_mosquitto
from aggregator.mqtt_process import RESTART_DELAY_S, ProcessMqttLink
from tests.benchmarks.bench_ingest import _queue, _session, _traffic
from tests.benchmarks.bench_mqtt_child import _drain
from tests.benchmarks.figures import Figure

PACKAGES = {"product": "mqtt5", "gmqtt": "gmqtt", "gmqtt5": "gmqtt", "codec": "mqtt5"}


class RouteLink(ProcessMqttLink):
    """The product's parent side, with a prototype child instead of :mod:`aggregator.mqtt_process`."""

    def __init__(self, route: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if route != "product":
            self._worker = Worker("tests.benchmarks.proto_mqtt_child", route, on_frame=self._frame,
                                  on_start=self._configure, on_exit=self._died, restart_delay_s=RESTART_DELAY_S,
                                  pipe_bytes=PIPE_BYTES)


def _left_over(host: str, port: int, client_id: str) -> int:
    """Messages the broker still holds for ``client_id``'s session (what a drain left unacknowledged)."""
    import paho.mqtt.client as mqtt

    got: list[int] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_message = lambda *a: got.append(1)
    client.connect(host, port)
    client.loop_start()
    time.sleep(1.0)  # a benchmark's check, not a test: redeliveries arrive at once after CONNACK
    client.disconnect()
    client.loop_stop()
    # end the session: it would otherwise queue the next route's backlog too
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect(host, port)
    client.disconnect()
    return len(got)


def run(args) -> Iterator[Figure]:  # type: ignore[no-untyped-def]
    if not shutil.which("mosquitto"):
        yield Figure("mqtt_routes.product.drain_cpu_us_per_msg", None, note="mosquitto not installed")
        return
    n_target = int(os.environ.get("INGEST_MESSAGES", 20_000 if getattr(args, "quick", False) else 50_000))
    rounds = int(os.environ.get("MQTT_ROUTE_ROUNDS", "3"))
    ratio = float(os.environ.get("MQTT_CHILD_PUBLISH_RATIO", "0.27"))
    requested = os.environ.get("MQTT_ROUTES", "product,gmqtt,codec").split(",")
    unknown = [r for r in requested if r not in PACKAGES]
    if unknown:  # paho, the product before 2026-12-07, is measured at commit 171d738
        raise ValueError(f"MQTT_ROUTES: unknown route(s) {', '.join(unknown)}; routes: {', '.join(PACKAGES)}")
    routes = [r for r in requested if importlib.util.find_spec(PACKAGES[r]) is not None]
    traffic = _traffic(n_target)
    n = len(traffic)
    results: dict[str, list[dict[str, Any]]] = {route: [] for route in routes}
    broker = start_mosquitto(workdir=Path(tempfile.mkdtemp(prefix="fw-bench-mqtt-routes-")))
    try:
        settings = MqttSettings(host=broker.host, port=broker.port)
        for r in range(rounds):
            order = routes[r % len(routes):] + routes[:r % len(routes)]
            for route in order:
                client_id = f"bench-route-{route}"
                _session(broker.host, broker.port, client_id)
                _queue(broker.host, broker.port, traffic)
                result = asyncio.run(_drain(settings, client_id, n, ratio, functools.partial(RouteLink, route)))
                result["left"] = _left_over(broker.host, broker.port, client_id)
                results[route].append(result)
                first_n, first_cpu = result["first"]
                print(f"round {r + 1} {route}: drain {(result['total'] - first_cpu) / (n - first_n) * 1e6:.1f} "
                      f"µs/msg, total {result['total'] / n * 1e6:.1f}, start-up {first_cpu * 1000:.0f} ms, "
                      f"busiest thread {result['busiest'] / n * 1e6:.1f}, {n / result['elapsed']:.0f} msg/s, "
                      f"load {os.getloadavg()[0]:.2f}, got {result['got']}, stale acks {result['stale']}, "
                      f"left unacknowledged {result['left']}", flush=True)
    finally:
        broker.stop()
    for route, runs in results.items():
        drains = [(x["total"] - x["first"][1]) / (n - x["first"][0]) * 1e6 for x in runs]
        yield Figure(f"mqtt_routes.{route}.drain_cpu_us_per_msg", round(sorted(drains)[len(drains) // 2], 1), "µs",
                     note="median; rounds: " + " / ".join(f"{d:.1f}" for d in drains))
        yield Figure(f"mqtt_routes.{route}.startup_cpu_ms", round(runs[0]["first"][1] * 1000), "ms")
        yield Figure(f"mqtt_routes.{route}.msgs_per_s", round(n / runs[-1]["elapsed"]), "msg/s")
