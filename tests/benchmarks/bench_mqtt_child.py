"""The MQTT process alone: what one agent message costs it, with nothing else in the way.

``run.py ingest`` prints the MQTT process's CPU per message, but beside a parent that fuses,
files visits and feeds the writer, so its figure moves with the whole pipeline and the machine.
This drains the same backlog (``bench_ingest``'s traffic, queued in a real mosquitto) through the
real child (:class:`~aggregator.mqtt_process.ProcessMqttLink`) with a parent that does only what
the child needs from it: acknowledge each batch as a commit would, and publish customer-tier
messages at the ingest benchmark's ratio (``MQTT_CHILD_PUBLISH_RATIO``, 0.27 a message: 85 %
moves at QoS 0, the rest enter/exit at QoS 1).

Figures: the whole process's CPU per message; the start-up (interpreter, imports, connect: CPU
until the first batch arrives) on its own, since a short benchmark divides it among few messages;
the drain after it; and the busiest thread (the link's network thread: its reads and writes,
decoding, the frames to the parent).

``mqtt_child.codec_us_per_msg`` is a baseline, not product code: the same backlog read through the
``mqtt5`` codec in the simplest loop (blocking socket, no session logic, no publishes) with the same
decoding and framing: what the MQTT process's own connection (:mod:`aggregator.mqtt_link`, on the
same codec since 2026-12-07) adds on top of it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.config import MqttSettings
from agent.contract import agent_subscription
from aggregator.child_process import encode_frame
from aggregator.embedded_broker import start_mosquitto
from aggregator.mqtt_link import Incoming
from aggregator.mqtt_process import ProcessMqttLink, plain_decoded
from aggregator.sqlite_writer import AckSender
from tests.benchmarks.bench_ingest import _cpu_of, _queue, _session, _traffic
from tests.benchmarks.figures import Figure

MOVE = b'{"ts":1796614710,"id":100123,"x":512,"y":388}'
ENTER = b'{"ts":1796614710,"id":100123}'
QOS1_SHARE = 0.15  # enter/exit among the tier's publishes in bench_ingest (832 of 5,421)


def _thread_cpu(pid: int) -> list[float]:
    """CPU seconds of each thread of a live process (Linux /proc), busiest first."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        seconds.append((int(fields[11]) + int(fields[12])) / tick)
    return sorted(seconds, reverse=True)


async def _drain(settings: MqttSettings, client_id: str, n: int, ratio: float,
                 make_link: Callable[..., ProcessMqttLink] = ProcessMqttLink) -> dict[str, Any]:
    """Drain ``n`` queued messages through the MQTT process ``make_link`` starts (bench_mqtt_routes passes
    one with a prototype child), acknowledging each batch as the writer's commit does."""
    done = asyncio.Event()
    got = 0
    owed = 0.0  # customer-tier publishes due, carried between batches
    first: tuple[int, float] | None = None  # (messages, CPU seconds) when the first batch arrived

    def on_batch(items: list[Incoming]) -> None:
        nonlocal got, owed, first
        if first is None:
            first = (len(items), _cpu_of(link.pid) or 0.0)
        got += len(items)
        acks.send([(item.mid, item.qos) for item in items])  # as the writer's commit does
        owed += ratio * len(items)
        for i in range(int(owed)):
            if i % round(1 / QOS1_SHARE) == 0:
                link.publish("retail/customer/enter", ENTER, qos=1)
            else:
                link.publish("retail/customer/move", MOVE, qos=0)
        owed -= int(owed)
        if got >= n:
            done.set()

    acks = AckSender()  # the writer's end of the MQTT process's acknowledgement socket
    link = make_link(settings, client_id, [agent_subscription("demo")], on_batch=on_batch,
                     on_acks_to=acks.point_to)
    started = time.perf_counter()
    await link.start()
    assert link.pid is not None
    pid = link.pid
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    total = _cpu_of(pid) or 0.0
    threads = _thread_cpu(pid)
    await link.stop()
    acks.point_to(None)
    assert first is not None
    return {"elapsed": elapsed, "total": total, "first": first, "busiest": threads[0], "got": got,
            "published": link.published, "stale": link.stale_acks}


def _codec_drain(host: str, port: int, client_id: str, n: int) -> float | None:
    """CPU seconds of this thread to read, decode, frame and acknowledge ``n`` queued messages
    through the ``mqtt5`` codec, one 256 KiB read and one write of PUBACKs at a time; None
    without ``mqtt5``."""
    try:
        import mqtt5  # type: ignore[import-not-found]
    except ImportError:
        return None
    started = time.thread_time()
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(mqtt5.ConnectPacket(client_id, clean_start=False, keep_alive=60,
                                     session_expiry_interval=3600).write())
    sock.sendall(mqtt5.SubscribePacket(1, [mqtt5.TopicFilter(agent_subscription("demo"),
                                                             max_qos=mqtt5.QoS.AT_LEAST_ONCE)]).write())
    publish, puback, read = mqtt5.PublishPacket, mqtt5.PubAckPacket, mqtt5.read
    buf = bytearray()
    got = 0
    while got < n:
        data = sock.recv(1 << 18)
        if not data:
            raise ConnectionError("the broker closed the codec drain's connection")
        buf += data
        view = memoryview(buf)
        pos, rows, acks = 0, [], []
        while pos < len(buf):
            try:
                packet, size = read(view[pos:])
            except IndexError:  # "Not enough bytes": the packet's tail comes with the next read
                break
            pos += size
            if type(packet) is publish:
                topic, payload = packet.topic, packet.payload
                rows.append((topic, payload, packet.packet_id, 1, time.time(), plain_decoded(topic, payload)))
                acks.append(puback(packet.packet_id).write())
        view.release()
        del buf[:pos]
        if rows:
            got += len(rows)
            encode_frame(("msgs", rows))
            sock.sendall(b"".join(acks))
    sock.sendall(mqtt5.DisconnectPacket().write())
    sock.close()
    return time.thread_time() - started


def run(args) -> Iterator[Figure]:  # type: ignore[no-untyped-def]
    if not shutil.which("mosquitto"):
        yield Figure("mqtt_child.msgs_per_s", None, note="mosquitto not installed")
        return
    n_target = int(os.environ.get("INGEST_MESSAGES", 20_000 if getattr(args, "quick", False) else 50_000))
    ratio = float(os.environ.get("MQTT_CHILD_PUBLISH_RATIO", "0.27"))
    traffic = _traffic(n_target)
    n = len(traffic)
    broker = start_mosquitto(workdir=Path(tempfile.mkdtemp(prefix="fw-bench-mqtt-child-")))
    try:
        settings = MqttSettings(host=broker.host, port=broker.port)
        _session(broker.host, broker.port, "bench-mqtt-child")
        _queue(broker.host, broker.port, traffic)
        result = asyncio.run(_drain(settings, "bench-mqtt-child", n, ratio))
        first_n, first_cpu = result["first"]
        us = 1e6
        yield Figure("mqtt_child.msgs_per_s", round(n / result["elapsed"]), "msg/s",
                     note=f"{n} msgs, {result['published']} customer-tier publishes (ratio {ratio})")
        yield Figure("mqtt_child.cpu_us_per_msg", round(result["total"] / n * us, 1), "µs",
                     note="the MQTT process's CPU time / messages, start-up included (as run.py ingest reports it)")
        yield Figure("mqtt_child.startup_cpu_ms", round(first_cpu * 1000), "ms",
                     note=f"CPU until the first batch ({first_n} msgs) reached the parent: interpreter, imports, "
                          "connect")
        yield Figure("mqtt_child.drain_cpu_us_per_msg",
                     round((result["total"] - first_cpu) / max(1, n - first_n) * us, 1), "µs",
                     note="after the first batch: the steady per-message cost")
        yield Figure("mqtt_child.network_thread_us_per_msg", round(result["busiest"] / n * us, 1), "µs",
                     note="the busiest thread: the link's reads, acks and publishes, decoding, frames to the parent")
        _session(broker.host, broker.port, "bench-mqtt-codec")
        _queue(broker.host, broker.port, traffic)
        codec = _codec_drain(broker.host, broker.port, "bench-mqtt-codec", n)
        yield Figure("mqtt_child.codec_us_per_msg", None if codec is None else round(codec / n * us, 1), "µs",
                     note="mqtt5 not installed" if codec is None else
                     "the same backlog read, decoded, framed and acked through the mqtt5 codec (no publishes): "
                     "a measurement only")
    finally:
        broker.stop()
