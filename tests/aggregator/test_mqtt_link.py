"""MqttLink: the read-ahead socket under paho, and a queued backlog drained in order, acked once."""

from __future__ import annotations

import asyncio
import socket

import paho.mqtt.client as mqtt
import pytest

from agent.config import MqttSettings
from aggregator.embedded_broker import Broker, free_port
from aggregator.mqtt_link import Incoming, MqttLink, _Client, _ReadAheadSocket
from tests.aggregator.conftest import wait_until
from tests.mqtt_helpers import Collector, publish


def test_read_ahead_serves_small_reads_from_one_large_read() -> None:
    a, b = socket.socketpair()
    try:
        sock = _ReadAheadSocket(b)
        a.sendall(b"\x30\x05hello\x40\x02\x00\x01")
        assert sock.recv(1) == b"\x30"
        assert sock.pending() == 10  # the rest came with the first read
        assert sock.recv(1) == b"\x05"
        assert sock.recv(5) == b"hello"
        assert sock.recv(100) == b"\x40\x02\x00\x01"  # never more than the buffer holds
        assert sock.pending() == 0
        a.sendall(b"xyz")
        assert sock.recv(2) == b"xy"
        assert sock.recv(2) == b"z"
        assert sock.fileno() == b.fileno()  # everything else is the real socket's
        a.close()
        assert sock.recv(1) == b""  # the peer closed: paho sees a lost connection
    finally:
        a.close()
        b.close()


def test_read_ahead_lets_a_nonblocking_socket_say_it_has_nothing() -> None:
    a, b = socket.socketpair()
    try:
        b.setblocking(False)
        sock = _ReadAheadSocket(b)
        with pytest.raises(BlockingIOError):  # paho turns this into "try again after select"
            sock.recv(1)
    finally:
        a.close()
        b.close()


def _publish_packet(topic: bytes, payload: bytes, *, qos: int, mid: int = 0, flags: int = 0) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"") + payload
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | 0x80 if length else byte)
        if not length:
            break
    return bytes([0x30 | qos << 1 | flags]) + bytes(encoded) + body


def _reading_client() -> tuple[_Client, socket.socket, list[tuple[str, bytes, int, int, str]]]:
    """A paho client reading one end of a socketpair; records which path delivered each message."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client = _Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fast-path", protocol=mqtt.MQTTv311)
    client.manual_ack_set(True)
    got: list[tuple[str, bytes, int, int, str]] = []
    client.on_publishes = lambda packets: got.extend((t.decode(), p, m, q, "fast") for t, p, m, q in packets)
    client.on_message = lambda c, u, msg: got.append((msg.topic, msg.payload, msg.mid, msg.qos, "paho"))
    client._sock = _ReadAheadSocket(ours)
    return client, theirs, got


def _read_all(client: _Client) -> int:
    rc = 0
    for _ in range(50):
        rc = client.loop_read()
        if rc or not client._sock.pending():
            break
    return rc


def test_publish_packets_are_parsed_in_order_and_the_rest_is_left_to_paho() -> None:
    client, peer, got = _reading_client()
    try:
        big = bytes(range(256)) * 3  # a two-byte remaining length
        peer.sendall(_publish_packet(b"a/first", b"ignored-first", qos=1, mid=1)  # paho reads the first
                     + _publish_packet(b"a/one", b"one", qos=1, mid=2)
                     + _publish_packet(b"a/empty", b"", qos=0, flags=1)  # retained, empty payload
                     + b"\xd0\x00"  # PINGRESP: paho's
                     + _publish_packet("a/ünï".encode(), big, qos=1, mid=65535, flags=8)  # DUP
                     + _publish_packet(b"a/two", b"two", qos=1, mid=3))
        assert _read_all(client) == 0
        assert [(t, p, m, q) for t, p, m, q, _ in got] == [
            ("a/first", b"ignored-first", 1, 1), ("a/one", b"one", 2, 1), ("a/empty", b"", 0, 0),
            ("a/ünï", big, 65535, 1), ("a/two", b"two", 3, 1)]
        assert [path for *_, path in got].count("fast") == 4
        # a packet cut by the end of what has arrived: paho keeps the half, and completes it
        got.clear()
        whole = _publish_packet(b"a/split", b"x" * 500, qos=1, mid=7)
        peer.sendall(_publish_packet(b"a/before", b"b", qos=1, mid=6) + whole[:200])
        assert _read_all(client) == 0
        peer.sendall(whole[200:] + _publish_packet(b"a/after", b"c", qos=1, mid=8))
        assert _read_all(client) == 0
        assert [(t, m) for t, _, m, _, _ in got] == [("a/before", 6), ("a/split", 7), ("a/after", 8)]
        assert got[1][1] == b"x" * 500
    finally:
        peer.close()
        client._sock.close()


def test_a_malformed_packet_after_good_ones_is_paho_s_protocol_error() -> None:
    client, peer, got = _reading_client()
    try:
        peer.sendall(_publish_packet(b"a/first", b"1", qos=1, mid=1) + _publish_packet(b"a/ok", b"2", qos=1, mid=2)
                     + b"\x32\xff\xff\xff\xff\x01")  # five remaining-length bytes
        assert _read_all(client) == mqtt.MQTT_ERR_PROTOCOL
        assert [t for t, *_ in got] == ["a/first", "a/ok"]
        assert client._sock is None  # paho dropped the connection (and reconnects, in the link)
    finally:
        peer.close()
        if client._sock is not None:
            client._sock.close()


@pytest.mark.broker
async def test_a_queued_backlog_arrives_complete_in_order_and_is_not_redelivered_after_ack(
        mqtt_broker: Broker) -> None:
    """Thousands of messages arrive in a few large reads: every one is handed over, in order."""
    settings = MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port)
    topic_filter = "fw-test/backlog/#"
    loop = asyncio.get_running_loop()
    received: list[Incoming] = []
    links: list[MqttLink] = []

    def on_batch(items: list[Incoming]) -> None:
        received.extend(items)
        # acknowledged as the aggregator's writer does after a commit: the broker only sends a
        # bounded number of unacknowledged messages, so the backlog flows only if acks come back
        links[-1].ack([(item.mid, item.qos) for item in items])

    first = MqttLink(settings, "backlog-reader", [topic_filter], on_batch=on_batch)
    links.append(first)
    first.start(loop)
    await wait_until(lambda: first.subscribed)
    first.stop()  # the persistent session now queues what is published
    n = 3000
    await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port,
                               [(f"fw-test/backlog/{i % 7}", b"%d" % i) for i in range(n)])

    second = MqttLink(settings, "backlog-reader", [topic_filter], on_batch=on_batch)
    links.append(second)
    second.start(loop)
    await wait_until(lambda: len(received) >= n, timeout_s=30)
    assert [int(item.payload) for item in received] == list(range(n))
    await asyncio.sleep(0.3)  # let paho write the last acknowledgements
    second.stop()

    received.clear()
    third = MqttLink(settings, "backlog-reader", [topic_filter], on_batch=on_batch)
    links.append(third)
    third.start(loop)
    await wait_until(lambda: third.subscribed)
    await asyncio.sleep(0.5)
    third.stop()
    assert received == []  # acknowledged once: the broker has nothing left to redeliver


@pytest.mark.broker
async def test_published_messages_keep_their_order_across_qos_and_any_payload_size(mqtt_broker: Broker) -> None:
    """QoS 0 runs go out as one pre-framed block, QoS 1 through paho: a subscriber sees one order."""
    loop = asyncio.get_running_loop()
    link = MqttLink(MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port), "order-writer", [])
    link.start(loop)
    await wait_until(lambda: link.connected)
    sizes = [0, 1, 100, 127, 128, 16_383, 16_384, 200_000]  # remaining-length 1, 2 and 3 bytes
    sent = [(f"fw-test/order/{i % 3}", b"%d:" % i + b"x" * sizes[i % len(sizes)], i % 4 == 1)
            for i in range(60)]
    with Collector(mqtt_broker.host, mqtt_broker.port, "fw-test/order/#") as collector:
        for topic, payload, qos1 in sent:
            link.publish(topic, payload, qos=1 if qos1 else 0)
        assert link.published == 0  # nothing goes out before the loop's current callback ends
        got = await loop.run_in_executor(None, collector.wait_for, len(sent))
    link.stop()
    assert [(m.topic, m.payload) for m in got] == [(t, p) for t, p, _ in sent]
    assert link.published == len(sent)
    assert link.publish_errors == 0


@pytest.mark.broker
async def test_qos1_publishes_have_no_in_flight_limit_and_none_is_left_waiting(mqtt_broker: Broker) -> None:
    """No in-flight limit (so paho's per-PUBACK scan is skipped): 3,000 QoS 1 messages in one go, more
    than the old limit of 1,000, all arrive in order and all are acknowledged."""
    loop = asyncio.get_running_loop()
    link = MqttLink(MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port), "qos1-writer", [])
    link.start(loop)
    await wait_until(lambda: link.connected)
    sent = [b"%d" % i for i in range(3000)]
    with Collector(mqtt_broker.host, mqtt_broker.port, "fw-test/qos1") as collector:
        for payload in sent:
            link.publish("fw-test/qos1", payload, qos=1)
        got = await loop.run_in_executor(None, collector.wait_for, len(sent), 30.0)
        await wait_until(lambda: not link.client._out_messages)  # every PUBACK came back and was handled
    link.stop()
    assert [m.payload for m in got] == sent
    assert link.published == len(sent) and link.publish_errors == 0
    assert link.client._inflight_messages == 0


@pytest.mark.broker
async def test_qos0_while_disconnected_is_dropped_and_counted_and_bad_topics_are_refused(
        mqtt_broker: Broker) -> None:
    loop = asyncio.get_running_loop()
    nobody = MqttLink(MqttSettings(host="127.0.0.1", port=free_port()), "nobody-listens", [])
    nobody.start(loop)  # nothing listens there: it never connects
    nobody.publish("customer/move", b"{}", qos=0)
    nobody.publish("customer/move", b"{}", qos=0)
    await wait_until(lambda: nobody.dropped_qos0 == 2)
    nobody.stop()
    link = MqttLink(MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port), "wildcard-writer", [])
    link.start(loop)
    await wait_until(lambda: link.connected)
    link.publish("customer/+/move", b"{}", qos=0)  # a wildcard is not a topic one can publish to
    await wait_until(lambda: link.publish_errors == 1)
    link.stop()
    assert link.published == 0
