"""MqttLink: the mqtt5 codec's connection through a real mosquitto: backlogs drained in order and acked
once, publishes in order, MQTT 5 agents' properties and topic aliases resolved, reconnection with back-off."""

from __future__ import annotations

import asyncio

import paho.mqtt.client as mqtt
import pytest

from agent.config import MqttSettings
from aggregator.embedded_broker import Broker, free_port
from aggregator.mqtt_link import Incoming, MqttLink
from tests.aggregator.conftest import acking_link, wait_until
from tests.mqtt_helpers import Collector, publish


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
    # no wait: stop() queues the DISCONNECT behind the acknowledgements, and one write sends them in order
    second.stop()

    received.clear()
    third = MqttLink(settings, "backlog-reader", [topic_filter], on_batch=on_batch)
    links.append(third)
    third.start(loop)
    await wait_until(lambda: third.subscribed)
    # the broker sends a session's redeliveries right after the CONNACK: a message published after the
    # SUBACK comes behind any of them, so once it is here, anything redelivered would be here too
    await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port, [("fw-test/backlog/end", b"end")])
    await wait_until(lambda: any(item.payload == b"end" for item in received))
    third.stop()
    assert [item.payload for item in received] == [b"end"]  # acknowledged once: nothing was redelivered


@pytest.mark.broker
async def test_published_messages_keep_their_order_across_qos_and_any_payload_size(mqtt_broker: Broker) -> None:
    """QoS 0 and QoS 1 through the link's publish, from one thread: a subscriber sees one order."""
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
async def test_qos1_publishes_beyond_the_broker_s_window_all_arrive_none_left_waiting(mqtt_broker: Broker) -> None:
    """3,000 QoS 1 messages in one go, more than the broker's Receive Maximum lets be in flight at once:
    the rest wait their turn; all arrive in order and all are acknowledged."""
    loop = asyncio.get_running_loop()
    link = MqttLink(MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port), "qos1-writer", [])
    link.start(loop)
    await wait_until(lambda: link.connected)
    sent = [b"%d" % i for i in range(3000)]
    with Collector(mqtt_broker.host, mqtt_broker.port, "fw-test/qos1") as collector:
        for payload in sent:
            link.publish("fw-test/qos1", payload, qos=1)
        got = await loop.run_in_executor(None, collector.wait_for, len(sent), 30.0)
        await wait_until(lambda: link.in_flight == 0)  # every PUBACK came back and was handled
    link.stop()
    assert [m.payload for m in got] == sent
    assert link.published == len(sent) and link.publish_errors == 0
    assert link.in_flight == 0


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


@pytest.mark.broker
async def test_an_mqtt5_agent_s_messages_reach_the_link_intact(mqtt_broker: Broker) -> None:
    """Agents speak MQTT 5 (properties, topic aliases); the broker resolves the aliases for the link
    (which allows none towards itself): every topic and payload arrives as sent, acknowledged once."""
    loop = asyncio.get_running_loop()
    link, received = await acking_link(MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port), "v5-listener",
                                       ["floorwalker/demo/agents/+/+"])
    sent = [(f"floorwalker/demo/agents/agent-{i % 3}/move", b'{"n": %d}' % i) for i in range(200)]
    await loop.run_in_executor(None, _publish_v5, mqtt_broker.host, mqtt_broker.port, sent)
    await wait_until(lambda: len(received) == len(sent))
    link.stop()
    assert [(i.topic, i.payload, i.qos) for i in received] == [(t, p, 1) for t, p in sent]


def _publish_v5(host: str, port: int, items: list[tuple[str, bytes]]) -> None:
    """Publish as an agent does (MQTT 5), with properties and topic aliases the broker must resolve."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="v5-agent", protocol=mqtt.MQTTv5)
    client.connect(host, port)
    client.loop_start()
    try:
        aliases: dict[str, int] = {}
        infos = []
        for topic, payload in items:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("agent-version", "2.0")]
            props.MessageExpiryInterval = 3600
            props.PayloadFormatIndicator = 1
            props.ContentType = "application/json"
            if topic in aliases:  # the second time: the alias alone, an empty topic
                props.TopicAlias = aliases[topic]
                infos.append(client.publish("", payload, qos=1, properties=props))
            else:
                aliases[topic] = props.TopicAlias = len(aliases) + 1
                infos.append(client.publish(topic, payload, qos=1, properties=props))
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.mark.broker
async def test_a_burst_is_read_to_its_end_without_waiting_for_more_traffic(mqtt_broker: Broker) -> None:
    """Every packet of a read is handled: the tail of a burst must not wait for the next packet or
    keepalive (an hour here)."""
    loop = asyncio.get_running_loop()
    received: list[Incoming] = []
    settings = MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port, keepalive_s=3600)
    link = MqttLink(settings, "burst-reader", ["fw-test/burst/#"], on_batch=received.extend)
    link.start(loop)
    await wait_until(lambda: link.subscribed)
    for n in (1, 2, 7, 500):
        received.clear()
        await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port,
                                   [("fw-test/burst/x", b"%d" % i) for i in range(n)], 0)
        await wait_until(lambda n=n: len(received) == n, timeout_s=10)
    link.stop()


@pytest.mark.broker
async def test_the_link_connects_once_the_broker_comes_and_reconnects_after_it_restarts(
        broker_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aggregator.embedded_broker import free_port as pick_port

    loop = asyncio.get_running_loop()
    port = pick_port()
    received: list[Incoming] = []
    link = MqttLink(MqttSettings(host="127.0.0.1", port=port), "restart-reader", ["fw-test/restart"],
                    on_batch=received.extend, reconnect_min_s=0.1, reconnect_max_s=0.5)
    link.start(loop)
    await wait_until(lambda: link.last_error != "")  # nothing listens yet: refused, backing off
    assert not link.connected
    broker = broker_factory(port=port, workdir=tmp_path / "broker")
    await wait_until(lambda: link.subscribed)
    broker.stop()
    await wait_until(lambda: not link.connected)
    broker_factory(port=port, workdir=tmp_path / "broker")
    await wait_until(lambda: link.subscribed and link.connects == 2, timeout_s=15)
    await loop.run_in_executor(None, publish, "127.0.0.1", port, [("fw-test/restart", b"after")])
    await wait_until(lambda: len(received) == 1)
    link.stop()
    assert link.disconnects == 2  # the broker restart, and the clean stop


async def test_a_delivery_is_acknowledged_once_and_never_across_a_reconnect(broker_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Acks take the link's delivery ids, not packet ids (which the broker reuses once acknowledged):
    a second ack of one delivery, and an ack from before a reconnect, are dropped and counted; the
    message the broker redelivers comes under a new id, and acking that one settles it."""
    loop = asyncio.get_running_loop()
    port = free_port()
    workdir = tmp_path / "broker"
    broker = broker_factory(port=port, workdir=workdir)
    settings = MqttSettings(host="127.0.0.1", port=port)
    received: list[Incoming] = []
    link = MqttLink(settings, "stale-ack-reader", ["fw-test/stale/#"], on_batch=received.extend,
                    reconnect_min_s=0.1, reconnect_max_s=0.5)
    link.start(loop)
    await wait_until(lambda: link.subscribed)
    await loop.run_in_executor(None, publish, "127.0.0.1", port, [("fw-test/stale/a", b"a"), ("fw-test/stale/b", b"b")])
    await wait_until(lambda: len(received) == 2)
    a, b = received
    link.ack([(a.mid, a.qos)])
    link.ack([(a.mid, a.qos)])  # the writer resending a batch it had already acknowledged
    await wait_until(lambda: link.stale_acks == 1)

    broker.stop()  # b is left unacknowledged; the restarted broker redelivers it from the session
    await wait_until(lambda: not link.connected)
    broker_factory(port=port, workdir=workdir)
    await wait_until(lambda: len(received) == 3, timeout_s=15)
    again = received[2]
    assert again.payload == b"b" and again.mid != b.mid
    link.ack([(b.mid, b.qos)])  # of the earlier connection
    await wait_until(lambda: link.stale_acks == 2)
    link.ack([(again.mid, again.qos)])
    link.stop()

    # settled: a new connection of the same session gets only what is published now
    later: list[Incoming] = []
    reader = MqttLink(settings, "stale-ack-reader", ["fw-test/stale/#"], on_batch=later.extend)
    reader.start(loop)
    await wait_until(lambda: reader.subscribed)
    await loop.run_in_executor(None, publish, "127.0.0.1", port, [("fw-test/stale/c", b"c")])
    await wait_until(lambda: any(item.payload == b"c" for item in later))
    reader.stop()
    assert [item.payload for item in later] == [b"c"]
    assert reader.stale_acks == 0


@pytest.mark.broker
async def test_a_clean_stop_leaves_the_retained_availability_offline(mqtt_broker: Broker) -> None:
    """stop() right behind more QoS 1 publishes than the broker lets be in flight: the explicit "offline"
    waits behind them and never goes; the DISCONNECT asks for the will (the same "offline", retained),
    so Home Assistant does not go on showing "online"; what never went is counted."""
    loop = asyncio.get_running_loop()
    topic = "fw-test/availability/link"
    link = MqttLink(MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port), "availability-writer", [],
                    availability=(topic, b"online", b"offline"))
    link.start(loop)
    await wait_until(lambda: link.connected)
    with Collector(mqtt_broker.host, mqtt_broker.port, topic) as collector:
        got = await loop.run_in_executor(None, collector.wait_for, 1)
    assert [(m.payload, m.retain) for m in got] == [(b"online", True)]
    n = 5000  # the test broker allows 1,000 in flight
    for i in range(n):
        link.publish("fw-test/availability/flood", b"%d" % i, qos=1)
    link.stop()  # in the same callback: the flood and the "offline" reach the network thread together
    assert link.published == n + 1 and link.publish_errors > 0
    assert link.last_error == ""
    with Collector(mqtt_broker.host, mqtt_broker.port, topic) as collector:
        got = await loop.run_in_executor(None, collector.wait_for, 1)
    assert [(m.payload, m.retain) for m in got] == [(b"offline", True)]
