"""ProcessMqttLink: the agent-tier connection in a child process, through a real mosquitto."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from agent.config import MqttSettings
from agent.contract import Presence, Range, Rejection, decode_agent
from aggregator.embedded_broker import Broker
from aggregator.mqtt_link import Incoming
from aggregator.mqtt_process import ProcessMqttLink, plain_decoded, revive
from aggregator.store import Batch, Store
from tests.aggregator import agents
from tests.aggregator.conftest import wait_until
from tests.conftest import process_ended
from tests.mqtt_helpers import Collector, publish

pytestmark = pytest.mark.broker

FILTER = "floorwalker/demo/agents/+/+"


def _traffic(shoppers: int) -> list[tuple[str, bytes]]:
    items: list[tuple[str, bytes]] = []
    for s in range(shoppers):
        items += agents.visit(f"d-proc-{s}", time.time() - 600 + s, seq0=len(items),
                              path=[(500.0 + 30 * i, 500.0) for i in range(4)], step_s=2.0)
    return items


def test_decoded_messages_survive_the_pipe_unchanged() -> None:
    """What the parent rebuilds equals what decoding in the parent would give."""
    door = b'{"msg_id":"d1","agent":"agent-1","ts":1.7e9,"sensor":"s","direction":"in"}'
    traffic = [*_traffic(2), ("floorwalker/demo/agents/agent-1/move", b"{not json"),
               ("floorwalker/demo/agents/agent-1/bogus", b"{}"), ("floorwalker/demo/agents/agent-1/door", door)]
    kinds = set()
    for topic, payload in traffic:
        here = decode_agent(topic, payload)
        there = revive(plain_decoded(topic, payload))
        if there is None:  # the parent decodes these kinds itself
            assert not isinstance(here, (Presence, Rejection))
            kinds.add("parent")
            continue
        assert there == here and type(there) is type(here)
        if isinstance(here, Presence):
            # ranges cross as plain tuples in Range's field order (Fusion.add unpacks them)
            assert there.ranges and all(type(r) is tuple and Range(*r) == h
                                        for r, h in zip(there.ranges, here.ranges, strict=True))
        kinds.add(type(here).__name__)
    assert kinds == {"Presence", "Rejection", "parent"}


async def test_a_backlog_arrives_decoded_in_order_and_the_writer_acknowledges_it(mqtt_broker: Broker,
                                                                                 sqlite_path: Path) -> None:
    """The one-way path: MQTT process -> here -> writer -> MQTT process. Nothing acknowledges from
    here, so once the writer commits, a new session finds nothing left to redeliver."""
    settings = MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port)
    loop = asyncio.get_running_loop()
    received: list[Incoming] = []
    store = Store(sqlite_path)

    def on_batch(items: list[Incoming]) -> None:  # as ingest does: rows and acknowledgements in one batch
        received.extend(items)
        store.submit(Batch(messages=[(f"m:{len(received)}:{i.mid}", "a", "move", i.received, "d", i.payload)
                                     for i in items], acks=[(i.mid, i.qos) for i in items]))

    first = ProcessMqttLink(settings, "proc-reader", [FILTER])
    await first.start()
    await wait_until(lambda: first.subscribed)
    await first.stop()  # the persistent session queues what comes next
    traffic = [*_traffic(40), ("floorwalker/demo/agents/agent-1/move", b"\xff not json")]
    await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port, traffic)

    await store.start()
    second = ProcessMqttLink(settings, "proc-reader", [FILTER], on_batch=on_batch, on_acks_to=store.send_acks_to)
    await second.start()
    await wait_until(lambda: len(received) >= len(traffic), timeout_s=30)
    assert [(i.topic, i.payload) for i in received] == traffic
    assert all(isinstance(i.decoded, Presence) for i in received[:-1])
    assert isinstance(received[-1].decoded, Rejection) and received[-1].decoded.reason == "not-json"
    await wait_until(lambda: second.received == len(traffic))  # the child's counters reach the parent
    await store.stop()  # as the aggregator stops: the store first, its last acknowledgements go out
    await second.stop()
    assert store.stats.rows == len(traffic)

    received.clear()
    third = ProcessMqttLink(settings, "proc-reader", [FILTER], on_batch=received.extend)
    await third.start()
    await wait_until(lambda: third.subscribed)
    # a redelivery would come ahead of what is published now
    await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port,
                               [("floorwalker/demo/agents/agent-1/move", b"end")])
    await wait_until(lambda: any(item.payload == b"end" for item in received))
    await third.stop()
    # acknowledged once, by the writer, before second.stop() returned: nothing left to redeliver
    assert [item.payload for item in received] == [b"end"]


async def test_a_killed_child_is_replaced_and_what_it_had_not_acked_comes_again(mqtt_broker: Broker) -> None:
    settings = MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port)
    loop = asyncio.get_running_loop()
    received: list[Incoming] = []
    link = ProcessMqttLink(settings, "proc-killed", [FILTER], on_batch=received.extend)  # never acks
    await link.start()
    await wait_until(lambda: link.subscribed)
    traffic = _traffic(5)
    await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port, traffic)
    await wait_until(lambda: len(received) == len(traffic))
    first_pid = link.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    await wait_until(lambda: link.restarts == 1 and link.subscribed, timeout_s=15)
    assert link.pid != first_pid
    # the broker redelivers everything unacknowledged to the new child
    await wait_until(lambda: len(received) == 2 * len(traffic), timeout_s=15)
    assert [i.payload for i in received[len(traffic):]] == [p for _, p in traffic]
    # counted across both children (the count comes in the child's state frames, after its messages)
    await wait_until(lambda: link.received >= 2 * len(traffic))
    await link.stop()


async def test_publishes_keep_their_order_through_the_child(mqtt_broker: Broker) -> None:
    loop = asyncio.get_running_loop()
    link = ProcessMqttLink(MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port), "proc-writer", [])
    await link.start()
    await wait_until(lambda: link.connected)
    sent = [(f"fw-test/proc/{i % 3}", b"%d:" % i + b"x" * (i * 997 % 5000), i % 4 == 1) for i in range(80)]
    with Collector(mqtt_broker.host, mqtt_broker.port, "fw-test/proc/#") as collector:
        for topic, payload, qos1 in sent:
            link.publish(topic, payload, qos=1 if qos1 else 0)
        got = await loop.run_in_executor(None, collector.wait_for, len(sent))
    await wait_until(lambda: link.published == len(sent))
    await link.stop()
    assert [(m.topic, m.payload) for m in got] == [(t, p) for t, p, _ in sent]
    assert link.publish_errors == 0


async def test_publishes_go_out_while_a_backlog_is_still_coming_in(mqtt_broker: Broker, sqlite_path: Path) -> None:
    """The broker acknowledges a QoS 1 publish on the connection it came in on, after what it is already
    sending there: on the reading connection, publishes beyond the broker's Receive Maximum (1,000 here)
    would wait for the backlog (in the ingest benchmark 81,665 of 107,819 were still waiting at the end).
    They go out on a connection of their own."""
    settings = MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port)
    loop = asyncio.get_running_loop()
    first = ProcessMqttLink(settings, "proc-busy", [FILTER])
    await first.start()
    await wait_until(lambda: first.subscribed)
    await first.stop()  # the persistent session queues the backlog
    # 2 KB each: the broker's 1,000 in flight to us are more than the MQTT process's 1 MiB pipe to us holds
    backlog = [("floorwalker/demo/agents/agent-1/move", b"%d" % i + b"x" * 2000) for i in range(20_000)]
    await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port, backlog)

    store = Store(sqlite_path)
    await store.start()
    received: list[Incoming] = []
    sent = [(f"fw-test/busy/{i}", b"%d" % i) for i in range(3_000)]
    handed_over = False  # the publishes are with the MQTT process
    got: list[Any] = []
    received_then: list[int] = []

    def stalled(items: list[Incoming]) -> None:
        """Store and acknowledge; once the publishes are handed over, stop reading until they arrive (the
        aggregator's loop busy elsewhere): the reading connection then stops at a full pipe."""
        received.extend(items)
        store.submit(Batch(messages=[(f"m:{len(received)}:{i.mid}", "a", "move", i.received, "d", i.payload)
                                     for i in items], acks=[(i.mid, i.qos) for i in items]))
        if handed_over and not received_then:
            received_then.append(len(received))
            got.extend(collector.wait_for(len(sent), 20.0))

    second = ProcessMqttLink(settings, "proc-busy", [FILTER], on_batch=stalled, on_acks_to=store.send_acks_to)
    with Collector(mqtt_broker.host, mqtt_broker.port, "fw-test/busy/#") as collector:
        await second.start()
        await wait_until(lambda: len(received) > 0, timeout_s=30)
        for topic, payload in sent:
            second.publish(topic, payload, qos=1)
        second.flush()
        handed_over = True
        await wait_until(lambda: len(received) >= len(backlog), timeout_s=90)
    await store.stop()
    await second.stop()
    assert sorted(m.payload for m in got) == sorted(p for _, p in sent)
    assert received_then[0] < len(backlog), "the publishes waited for the whole backlog"


def test_the_child_exits_when_the_aggregator_is_killed(mqtt_broker: Broker) -> None:
    """A parent killed with -9 closes the child's stdin: the child must not outlive it."""
    code = textwrap.dedent(f"""
        import asyncio, sys
        from agent.config import MqttSettings
        from aggregator.mqtt_process import ProcessMqttLink

        async def main():
            link = ProcessMqttLink(MqttSettings(host={mqtt_broker.host!r}, port={mqtt_broker.port}), "orphan", [])
            await link.start()
            while not link.connected:
                await asyncio.sleep(0.05)
            print(link.pid, flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())  # type: ignore[union-attr]
        parent.kill()
        parent.wait()
        if not process_ended(child_pid):
            os.kill(child_pid, signal.SIGKILL)
            pytest.fail("the MQTT process outlived the aggregator")
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]
