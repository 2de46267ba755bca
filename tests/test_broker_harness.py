"""The harness's broker is real: messages go through it, QoS 1, retained, and across a restart."""

from __future__ import annotations

import pytest

from agent import contract as c
from tests.mqtt_helpers import Collector, publish

pytestmark = pytest.mark.broker


def test_messages_go_through_the_real_broker(mqtt_broker) -> None:
    topic = c.agent_topic("demo", "agent-1", "move")
    payloads = [c.encode_agent(c.Presence("move", f"agent-1:{i}", "agent-1", 1795435593.0 + i, "d-1",
                                          10.0 * i, 20.0, 1.0, -60.0, 1.0)) for i in range(50)]
    with Collector(mqtt_broker.host, mqtt_broker.port, c.agent_subscription("demo")) as sub:
        publish(mqtt_broker.host, mqtt_broker.port, [(topic, p) for p in payloads])
        got = sub.wait_for(50)
    decoded = [c.decode_agent(m.topic, m.payload) for m in got]
    assert [m.msg_id for m in decoded] == [f"agent-1:{i}" for i in range(50)]
    assert all(m.qos == 1 for m in got)


def test_retained_status_reaches_late_subscribers(mqtt_broker) -> None:
    topic = c.agent_topic("demo", "agent-2", "status")
    publish(mqtt_broker.host, mqtt_broker.port, [(topic, c.encode_agent(c.online("agent-2", 1.0)))], retain=True)
    with Collector(mqtt_broker.host, mqtt_broker.port, topic) as sub:
        (msg,) = sub.wait_for(1)
    assert msg.retain and c.decode_agent(msg.topic, msg.payload) == c.online("agent-2", 1.0)


def test_broker_restart_keeps_port(broker_factory, tmp_path) -> None:
    first = broker_factory(workdir=tmp_path / "b")
    if first.kind != "mosquitto":
        pytest.skip("restarting on the same port is exercised with mosquitto only")
    first.stop()
    second = broker_factory(port=first.port, workdir=tmp_path / "b")
    with Collector(second.host, second.port, "t/#") as sub:
        publish(second.host, second.port, [("t/x", b"1")])
        assert sub.wait_for(1)[0].payload == b"1"


def test_mosquitto_can_write_its_workdir(broker_factory, tmp_path) -> None:
    """Regression: as root, mosquitto dropped to its own user and silently lost log and persistence."""
    broker = broker_factory(workdir=tmp_path / "w")
    if broker.kind != "mosquitto":
        pytest.skip("mosquitto-specific")
    with Collector(broker.host, broker.port, "t/#") as sub:
        publish(broker.host, broker.port, [("t/x", b"1")])
        sub.wait_for(1)
    broker.stop()
    assert "New connection" in broker.log_text
    assert (tmp_path / "w" / "mosquitto.db").exists()
