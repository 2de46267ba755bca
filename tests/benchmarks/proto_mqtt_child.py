"""Prototype MQTT processes for ``bench_mqtt_routes``: the same child protocol as
:mod:`aggregator.mqtt_process` (config on stdin, ``msgs``/``state``/``acks_ready`` frames on
stdout, ``ack`` frames from the writer's Unix socket, ``pub`` frames on stdin), on another client.

A measurement, not product code: ``python -m tests.benchmarks.proto_mqtt_child ROUTE`` where ROUTE is

* ``gmqtt`` / ``gmqtt5``: gmqtt (asyncio) with ``optimistic_acknowledgement=False``; each QoS 1
  message's ``on_message`` coroutine awaits a future that the writer's acknowledgement resolves, and
  gmqtt sends the PUBACK when it returns (its only public way to defer an acknowledgement);
* ``codec``: an asyncio protocol of ours around the ``mqtt5`` sans-I/O codec (MQTT 5): a buffer
  parsed per read, PUBACKs written a commit at a time.

Both run single-threaded on one event loop (no network thread, no locks); decoding and framing
are the product's (``plain_decoded``, ``encode_frame``).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

from agent.config import MqttSettings
from aggregator.child_process import encode_frame, read_frame, set_up_child, take_frames
from aggregator.mqtt_link import STATE_FIELDS
from aggregator.mqtt_process import plain_decoded

Row = tuple[str, bytes, int, int, float]


class _Frames(asyncio.Protocol):
    """Frames from a stream (stdin or the writer's socket) to ``handle``; ``on_eof`` at its end."""

    def __init__(self, handle: Callable[[Any], None], on_eof: Callable[[], None] | None = None) -> None:
        self.buf = bytearray()
        self.handle, self.on_eof = handle, on_eof

    def data_received(self, data: bytes) -> None:
        self.buf += data
        for frame in take_frames(self.buf):
            self.handle(frame)

    def eof_received(self) -> bool:
        if self.on_eof is not None:
            self.on_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.on_eof is not None:
            self.on_eof()


class Counters:
    def __init__(self) -> None:
        for name in STATE_FIELDS:
            setattr(self, name, 0)
        self.connected = self.subscribed = False
        self.last_error = ""

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in STATE_FIELDS}


def _context(settings: MqttSettings) -> ssl.SSLContext | None:
    if not (settings.tls or settings.ca_file):
        return None
    context = ssl.create_default_context(cafile=settings.ca_file or None)
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file or None)
    return context


# ----------------------------------------------------------------------------- gmqtt

class GmqttLink(Counters):
    def __init__(self, settings: MqttSettings, client_id: str, subscriptions: list[str],
                 on_receive: Callable[[list[Row]], None], version: int) -> None:
        import gmqtt
        from gmqtt.mqtt.constants import MQTTv50, MQTTv311

        super().__init__()
        self.settings, self.subscriptions, self.on_receive = settings, subscriptions, on_receive
        self.version = MQTTv50 if version == 5 else MQTTv311
        kwargs = {"session_expiry_interval": 0xFFFFFFFF} if version == 5 else {}
        self.client = gmqtt.Client(client_id, clean_session=False, optimistic_acknowledgement=False, **kwargs)
        if settings.username:
            self.client.set_auth_credentials(settings.username, settings.password or None)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._unacked: dict[int, asyncio.Future[int]] = {}
        self._ids = itertools.count(random.SystemRandom().getrandbits(62))
        self._burst: list[Row] = []
        self._scheduled = False
        self._loop = asyncio.get_event_loop()
        self._gmqtt = gmqtt

    async def start(self) -> None:
        await self.client.connect(self.settings.host, self.settings.port, ssl=_context(self.settings) or False,
                                  keepalive=self.settings.keepalive_s, version=self.version)

    async def stop(self) -> None:
        await self.client.disconnect()

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        self.connected = True
        self.connects += 1
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)

    def _on_subscribe(self, client: Any, mid: int, qos: Any, properties: Any) -> None:
        self.subscribed = True

    async def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        delivery = next(self._ids)
        self._burst.append((topic, payload, delivery, qos, time.time()))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._hand_over)
        if not qos:
            return 0
        future = self._loop.create_future()
        self._unacked[delivery] = future
        return await future  # the PUBACK goes out when this returns: after the writer's commit

    def _hand_over(self) -> None:
        self._scheduled = False
        burst, self._burst = self._burst, []
        self.received += len(burst)
        self.on_receive(burst)

    def ack(self, items: list[tuple[int, int]]) -> None:
        unacked = self._unacked
        for delivery, qos in items:
            if qos:
                future = unacked.pop(delivery, None)
                if future is None:
                    self.stale_acks += 1
                else:
                    future.set_result(0)

    def publish_batch(self, messages: list[tuple[str, bytes, int, bool]]) -> None:
        publish = self.client.publish
        for topic, payload, qos, retain in messages:
            publish(topic, payload, qos=qos, retain=retain)
            self.published += 1


# ----------------------------------------------------------------------------- mqtt5 codec

class CodecLink(Counters, asyncio.Protocol):
    """MQTT 5 over the ``mqtt5`` codec: one parse per read, one write per commit's PUBACKs."""

    def __init__(self, settings: MqttSettings, client_id: str, subscriptions: list[str],
                 on_receive: Callable[[list[Row]], None]) -> None:
        import mqtt5

        super().__init__()
        self.m = mqtt5
        self.settings, self.client_id, self.subscriptions, self.on_receive = (settings, client_id, subscriptions,
                                                                              on_receive)
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self._unacked: dict[int, int] = {}  # delivery id -> packet id
        self._ids = itertools.count(random.SystemRandom().getrandbits(62))
        self._outgoing: dict[int, bytes] = {}  # packet id -> our QoS 1 PUBLISH, until its PUBACK
        self._packet_ids = itertools.cycle(range(1, 65536))
        self._last_out = time.monotonic()
        self.closed: asyncio.Future[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        await loop.create_connection(lambda: self, self.settings.host, self.settings.port,
                                     ssl=_context(self.settings))

    async def stop(self) -> None:
        if self.transport is not None:
            self.transport.write(self.m.DisconnectPacket().write())
            self.transport.close()
            assert self.closed is not None
            await self.closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        m = self.m
        self._write(m.ConnectPacket(self.client_id, clean_start=False, keep_alive=self.settings.keepalive_s,
                                    session_expiry_interval=0xFFFFFFFF,
                                    username=self.settings.username or None,
                                    password=self.settings.password.encode() or None).write())

    def connection_lost(self, exc: Exception | None) -> None:
        self.connected = self.subscribed = False
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        self._last_out = time.monotonic()

    def data_received(self, data: bytes) -> None:
        m = self.m
        buf = self.buf
        buf += data
        publish, read = m.PublishPacket, m.read
        rows: list[Row] = []
        unacked, ids = self._unacked, self._ids
        pos, size = 0, len(buf)
        now = time.time()
        with memoryview(buf) as view:
            while pos < size:
                try:
                    packet, n = read(view[pos:])
                except IndexError:  # the packet's tail comes with the next read
                    break
                pos += n
                if type(packet) is publish:
                    qos = int(packet.qos)
                    delivery = next(ids)
                    if qos:
                        unacked[delivery] = packet.packet_id
                    rows.append((packet.topic, packet.payload, delivery, qos, now))
                else:
                    self._control(packet)
        del buf[:pos]
        if rows:
            self.received += len(rows)
            self.on_receive(rows)

    def _control(self, packet: Any) -> None:
        m = self.m
        kind = type(packet)
        if kind is m.PubAckPacket:
            self._outgoing.pop(packet.packet_id, None)
        elif kind is m.ConnAckPacket:
            self.connected = True
            self.connects += 1
            self._write(m.SubscribePacket(next(self._packet_ids), [
                m.TopicFilter(topic, max_qos=m.QoS.AT_LEAST_ONCE) for topic in self.subscriptions]).write())
            for data in self._outgoing.values():  # QoS 1 publishes the last connection left unacknowledged
                self._write(data)
        elif kind is m.SubAckPacket:
            self.subscribed = True

    def ack(self, items: list[tuple[int, int]]) -> None:
        puback = self.m.PubAckPacket
        unacked = self._unacked
        out = []
        for delivery, qos in items:
            if qos:
                packet_id = unacked.pop(delivery, None)
                if packet_id is None:
                    self.stale_acks += 1
                else:
                    out.append(puback(packet_id).write())
        if out and self.transport is not None:
            self._write(b"".join(out))

    def publish_batch(self, messages: list[tuple[str, bytes, int, bool]]) -> None:
        m = self.m
        packet, qos1 = m.PublishPacket, m.QoS.AT_LEAST_ONCE
        out = []
        for topic, payload, qos, retain in messages:
            if qos:
                packet_id = next(self._packet_ids)
                data = packet(topic, payload, qos=qos1, retain=retain, packet_id=packet_id).write()
                self._outgoing[packet_id] = data
            else:
                data = packet(topic, payload, retain=retain).write()
            out.append(data)
            self.published += 1
        if out and self.transport is not None:
            self._write(b"".join(out))


# ----------------------------------------------------------------------------- the child

async def _serve(route: str, config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    out = sys.stdout.buffer

    def send(frame: Any) -> None:
        out.write(encode_frame(frame))
        out.flush()  # blocking: a parent that falls behind holds this loop, and TCP the broker

    def on_receive(rows: list[Row]) -> None:
        send(("msgs", [(t, p, mid, qos, rec, plain_decoded(t, p)) for t, p, mid, qos, rec in rows]))

    settings = MqttSettings(**config["mqtt"])
    link: Any
    if route == "codec":
        link = CodecLink(settings, config["client_id"], config["subscriptions"], on_receive)
    else:
        link = GmqttLink(settings, config["client_id"], config["subscriptions"], on_receive,
                         5 if route == "gmqtt5" else 4)

    def handle(frame: Any) -> None:
        if frame[0] == "ack":
            link.ack(frame[1])
        elif frame[0] == "pub":
            link.publish_batch(frame[1])

    done = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    server = await loop.create_unix_server(lambda: _Frames(handle), config["acks_socket"])
    send(("acks_ready", config["acks_socket"]))
    await loop.connect_read_pipe(lambda: _Frames(handle, finish), sys.stdin.buffer.raw)
    await link.start()
    last: dict[str, Any] = {}
    while not done.done():
        state = link.state()
        if state != last:
            send(("state", state))
            last = state
        await asyncio.wait([done], timeout=0.2)
    await asyncio.sleep(0.2)  # the writer's last acknowledgements
    await link.stop()
    server.close()
    send(("state", link.state()))


def main() -> int:
    set_up_child()
    route = sys.argv[1]
    frame = read_frame(sys.stdin.buffer.raw)  # type: ignore[arg-type]
    if frame is None or frame[0] != "config":
        return 2
    asyncio.run(_serve(route, frame[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
