"""MqttLink: the read-ahead socket under paho, and a queued backlog drained in order, acked once."""

from __future__ import annotations

import asyncio
import socket

import pytest

from agent.config import MqttSettings
from aggregator.embedded_broker import Broker, free_port
from aggregator.mqtt_link import Incoming, MqttLink, _ReadAheadSocket
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
