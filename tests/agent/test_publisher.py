"""Publishing to a real mosquitto: QoS 1, retained status and last will, spool across broker restarts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import contract
from agent.config import MqttSettings
from agent.errors import BrokerUnavailable
from agent.publisher import Publisher
from agent.sequence import Sequence
from agent.spool import Spool
from aggregator.embedded_broker import Broker, free_port
from tests.agent.helpers import DurableCollector, assert_in_order_once, persistent_broker_conf
from tests.conftest import wait_for
from tests.mqtt_helpers import Collector

pytestmark = pytest.mark.broker
STORE = "demo"


def make_publisher(tmp_path: Path, port: int, agent: str = "agent-p", **kwargs: object) -> Publisher:
    spool = Spool(tmp_path / f"{agent}.sqlite")
    return Publisher(agent_id=agent, store_id=STORE, settings=MqttSettings(host="127.0.0.1", port=port),
                     spool=spool, sequence=Sequence(agent, tmp_path / f"{agent}.seq"), **kwargs)


def send_door(pub: Publisher) -> str:
    msg_id, seq = pub.new_id()
    pub.publish(contract.Door(msg_id, pub.agent_id, time.time(), "door-main", "in"), seq)
    return msg_id


def test_publishes_qos1_and_retained_online_status(tmp_path: Path, mqtt_broker: Broker) -> None:
    with Collector(mqtt_broker.host, mqtt_broker.port, f"floorwalker/{STORE}/agents/#") as col:
        pub = make_publisher(tmp_path, mqtt_broker.port).start()
        try:
            ids = [send_door(pub) for _ in range(50)]
            got = col.wait_for(51)
        finally:
            pub.stop()
            pub.spool.close()
    status = [json.loads(m.payload) for m in got if m.topic.endswith("/status")]
    assert status[0]["state"] == "online"
    doors = [json.loads(m.payload)["msg_id"] for m in got if m.topic.endswith("/door")]
    assert doors == ids and all(m.qos == 1 for m in got)
    # A late subscriber still learns the agent's state: it is retained (offline after a clean stop).
    with Collector(mqtt_broker.host, mqtt_broker.port, f"floorwalker/{STORE}/agents/agent-p/status") as late:
        retained = late.wait_for(1)[0]
    assert retained.retain and json.loads(retained.payload)["state"] == "offline"


def test_spools_while_broker_is_away_then_replays_in_order(tmp_path: Path) -> None:
    pub = make_publisher(tmp_path, free_port())
    pub.start(wait_s=0.5)
    try:
        ids = [send_door(pub) for _ in range(30)]
        assert pub.spool.depth == 30 and not pub.connected
    finally:
        pub.stop()
        pub.spool.close()
    with Spool(tmp_path / "agent-p.sqlite") as reopened:  # survives a restart of the agent
        rows = reopened.peek(100)
    assert [json.loads(p)["msg_id"] for _, _, p in rows] == ids


@pytest.mark.faults
def test_broker_stopped_and_restarted_mid_stream(tmp_path: Path, broker_factory: Callable[..., Broker]) -> None:
    workdir = tmp_path / "broker"
    broker = broker_factory(workdir=workdir, extra_conf=persistent_broker_conf())
    col = DurableCollector(broker.host, broker.port, f"floorwalker/{STORE}/agents/+/door")
    pub = make_publisher(tmp_path, broker.port).start()
    sent: list[str] = []
    try:
        for i in range(600):
            sent.append(send_door(pub))
            if i == 200:
                broker.stop()  # mid-stream: paho has messages in flight, the rest must spool
            if i == 400:
                broker = broker_factory(port=broker.port, workdir=workdir, extra_conf=persistent_broker_conf())
            time.sleep(0.002)  # the scenario: a stream over time, so the broker's stop and restart fall mid-stream
        ids = col.wait_for_ids(set(sent), timeout_s=30)
    finally:
        pub.stop()
        pub.spool.close()
        col.close()
    assert_in_order_once(ids, sent)
    assert pub.spool.depth == 0


def test_refused_credentials_raise_a_clear_error(tmp_path: Path, broker_factory: Callable[..., Broker]) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    port = free_port()
    broker_factory(port=port, workdir=tmp_path / "auth", listener=False, extra_conf=[
        f"listener {port} 127.0.0.1", "allow_anonymous false", f"password_file {passwd}",
        *persistent_broker_conf()])
    pub = make_publisher(tmp_path, port)
    try:
        with pytest.raises(BrokerUnavailable, match="refused"):
            pub.start(wait_s=5)
    finally:
        pub.spool.close()


def test_unacknowledged_in_flight_messages_reach_the_disk_when_the_broker_dies(
        tmp_path: Path, mqtt_broker: Broker) -> None:
    """Regression: messages paho had sent but the broker never acknowledged lived only in paho's
    memory, so a SIGKILL of the agent before the broker came back lost them. A frozen broker
    (SIGSTOP) never acknowledges; killing it then drops the connection with them in flight."""
    import os
    import signal

    pub = make_publisher(tmp_path, mqtt_broker.port).start()
    try:
        assert mqtt_broker.process is not None
        os.kill(mqtt_broker.process.pid, signal.SIGSTOP)
        ids = [send_door(pub) for _ in range(20)]
        # Kept: handed to paho and written to the socket (no PUBACK can come back); only paho's private state
        # would say when, and the test reads no private attributes of third-party libraries.
        time.sleep(0.5)
        assert pub.spool.depth == 0
        os.kill(mqtt_broker.process.pid, signal.SIGKILL)
        wait_for(lambda: not pub.connected, 10, "the publisher to see the connection drop")
        assert not pub.connected
        wait_for(lambda: pub.spool.depth >= len(ids), 10, "the messages in flight to be spooled")
        spooled = [json.loads(payload)["msg_id"] for _, _, payload in pub.spool.peek(100)]
    finally:
        mqtt_broker.process.wait()
        pub.stop(flush_s=0.2)
        pub.spool.close()
    assert spooled == ids


def test_with_an_empty_spool_messages_go_straight_out_from_the_first(tmp_path: Path, mqtt_broker: Broker) -> None:
    """Connected with nothing spooled, nothing older waits: messages go to the broker, not the spool.

    Before, they went to the spool until the I/O thread's next turn, and then stayed on that path
    while the backlog lasted. Only a busy pipeline (bench_agent) starved that thread long enough to
    show it; here the thread wins the race either way, so this checks the outcome, not the race."""
    with Collector(mqtt_broker.host, mqtt_broker.port, f"floorwalker/{STORE}/agents/agent-p/door") as col:
        pub = make_publisher(tmp_path, mqtt_broker.port).start()
        try:
            ids = [send_door(pub) for _ in range(300)]
            assert pub.spool.depth == 0
            got = col.wait_for(300)
        finally:
            pub.stop()
            pub.spool.close()
    assert [json.loads(m.payload)["msg_id"] for m in got] == ids
