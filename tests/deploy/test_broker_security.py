"""The store broker as floorwalker-broker.sh configures it, enforced by a real mosquitto.

TLS only, no anonymous access, one account per agent, and an ACL under which an agent can speak
only for itself. Mosquitto does not tell a publisher its message was refused (it acknowledges a
QoS-1 publish and drops it), so every "refused" below is checked from the receiving side: the
aggregator's account subscribes to everything it may read and sees only the allowed messages.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from agent import contract as c
from tests.deploy.conftest import BROKER_SCRIPT, run
from tests.deploy.mqtt_tls import Refused, Session

pytestmark = pytest.mark.deploy

STORE = "store-1"


def move(agent: str, seq: int) -> bytes:
    return c.encode_agent(c.Presence("move", f"{agent}:{seq}", agent, 1795435593.0 + seq, "d-1",
                                     100.0, 200.0, 2.0, -60.0, 2.0))


def test_an_agent_publishes_under_its_own_topics_over_tls(store_broker) -> None:
    with Session(store_broker.port, **store_broker.creds("aggregator")) as agg, \
            Session(store_broker.port, **store_broker.creds("agent-1")) as agent:
        agg.subscribe(c.agent_subscription(STORE))
        agent.publish(c.agent_topic(STORE, "agent-1", "move"), move("agent-1", 1))
        (msg,) = agg.wait_for(1)
    assert msg.topic == "floorwalker/store-1/agents/agent-1/move"
    decoded = c.decode_agent(msg.topic, msg.payload)
    assert decoded.agent == "agent-1" and decoded.msg_id == "agent-1:1"


def test_an_agent_cannot_publish_as_another_agent_or_as_the_aggregator(store_broker) -> None:
    with Session(store_broker.port, **store_broker.creds("aggregator")) as agg, \
            Session(store_broker.port, **store_broker.creds("viewer")) as viewer, \
            Session(store_broker.port, **store_broker.creds("agent-1")) as agent:
        agg.subscribe(c.agent_subscription(STORE), "customer/#", c.scenario_topic(STORE))
        viewer.subscribe("customer/#")
        # refused: another agent's sub-tree, the customer tier, the scenario topic, outside the tree
        agent.publish(c.agent_topic(STORE, "agent-2", "move"), move("agent-2", 1))
        agent.publish(c.agent_topic(STORE, "agent-2", "status"), b'{"agent":"agent-2","state":"offline","ts":1}')
        agent.publish("customer/enter", b'{"id": "3", "ts": 1795435593}')
        agent.publish(c.scenario_topic(STORE), b"{}")
        agent.publish("floorwalker/store-1/agents/agent-1x/move", move("agent-1x", 1))
        # allowed, published last: once it arrives, anything refused before it would have arrived too
        agent.publish(c.agent_topic(STORE, "agent-1", "move"), move("agent-1", 2))
        got = agg.wait_for(1)
        time.sleep(0.2)
        got = list(agg.messages)
    assert [m.topic for m in got] == ["floorwalker/store-1/agents/agent-1/move"]
    assert viewer.messages == []


def test_an_agent_reads_its_scenario_topic_but_not_other_agents(store_broker) -> None:
    with Session(store_broker.port, **store_broker.creds("aggregator")) as agg, \
            Session(store_broker.port, **store_broker.creds("agent-2")) as agent2, \
            Session(store_broker.port, **store_broker.creds("agent-1")) as agent1:
        agent1.subscribe(c.agent_subscription(STORE), c.scenario_topic(STORE))
        agent2.publish(c.agent_topic(STORE, "agent-2", "move"), move("agent-2", 1))
        agg.publish(c.scenario_topic(STORE), b'{"customer": {"customer_id": "2"}, "path": []}')
        got = agent1.wait_for(1)
        time.sleep(0.2)
        got = list(agent1.messages)
    assert [m.topic for m in got] == ["floorwalker/store-1/scenario"]


def test_a_reader_reads_the_customer_tier_and_cannot_publish(store_broker) -> None:
    with Session(store_broker.port, **store_broker.creds("aggregator")) as agg, \
            Session(store_broker.port, **store_broker.creds("viewer")) as viewer:
        viewer.subscribe("customer/#", "floorwalker/#")
        agg.subscribe("customer/#")
        viewer.publish("customer/enter", b'{"id": "forged", "ts": 1}')
        agg.publish("customer/move", b'{"id": "3", "ts": 1795435595, "x": 700, "y": 300}')
        got = viewer.wait_for(1)
        time.sleep(0.2)
        viewer_got, agg_got = list(viewer.messages), list(agg.messages)
    expected = b'{"id": "3", "ts": 1795435595, "x": 700, "y": 300}'
    assert [(m.topic, m.payload) for m in got] == [("customer/move", expected)]
    assert viewer_got == got
    assert [m.payload for m in agg_got] == [expected]


@pytest.mark.parametrize("username, password", [
    (None, None),                      # anonymous
    ("agent-1", "wrong-password"),
    ("nobody", "pw-agent-1"),
])
def test_anonymous_and_bad_credentials_are_refused(store_broker, username, password) -> None:
    session = Session(store_broker.port, username=username, password=password, ca_file=store_broker.ca_file)
    with pytest.raises(Refused, match="refused"):
        session.connect()


def test_plain_tcp_is_refused_when_only_tls_is_configured(store_broker) -> None:
    session = Session(store_broker.port, username="agent-1", password="pw-agent-1")  # no TLS
    with pytest.raises(Refused):
        session.connect(timeout_s=3)
    conf = (store_broker.dir / "mosquitto.conf").read_text()
    listeners = [line for line in conf.splitlines() if line.startswith("listener")]
    assert listeners == [f"listener {store_broker.port}"]


def test_tls_needs_the_store_ca(store_broker, tmp_path) -> None:
    other = tmp_path / "other"
    run(BROKER_SCRIPT, "init", "--dir", other, "--port", "8883", "--host", "elsewhere")
    session = Session(store_broker.port, username="agent-1", password="pw-agent-1", ca_file=str(other / "ca.crt"))
    with pytest.raises(Refused, match=r"SSL|certificate"):
        session.connect()


def test_the_server_certificate_names_the_host(store_broker) -> None:
    """A client checks the name: connecting by a name not in the certificate fails."""
    ok = Session(store_broker.port, host="127.0.0.1", **store_broker.creds("agent-1"))
    ok.connect()
    ok.close()
    session = Session(store_broker.port, host="127.0.0.2", **store_broker.creds("agent-1"))
    with pytest.raises(Refused, match=r"SSL|certificate|match"):
        session.connect()


def test_an_agent_can_also_present_its_client_certificate(store_broker) -> None:
    clients = store_broker.dir / "clients"
    with Session(store_broker.port, **store_broker.creds("aggregator")) as agg, \
            Session(store_broker.port, cert_file=str(clients / "agent-1.crt"), key_file=str(clients / "agent-1.key"),
                    **store_broker.creds("agent-1")) as agent:
        agg.subscribe(c.agent_subscription(STORE))
        agent.publish(c.agent_topic(STORE, "agent-1", "health"), b'{"x": 1}')
        assert [m.topic for m in agg.wait_for(1)] == ["floorwalker/store-1/agents/agent-1/health"]


def lets_in(store_broker, username: str, password: str) -> bool:
    try:
        Session(store_broker.port, username=username, password=password, ca_file=store_broker.ca_file).connect().close()
    except Refused:
        return False
    return True


def wait_for_reload(check, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """mosquitto rereads its files on SIGHUP in its own time: poll ``check`` until it holds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the broker did not apply the reload"
        time.sleep(0.05)


def test_removing_an_account_locks_it_out_after_a_reload(store_broker) -> None:
    run(BROKER_SCRIPT, "add-account", "agent-9", "--password", "pw-9", "--dir", store_broker.dir)
    os.kill(store_broker.broker.process.pid, signal.SIGHUP)
    wait_for_reload(lambda: lets_in(store_broker, "agent-9", "pw-9"))
    out = run(BROKER_SCRIPT, "remove-account", "agent-9", "--dir", store_broker.dir).stdout
    assert "removed" in out
    assert "agent-9" not in (store_broker.dir / "acl").read_text()
    os.kill(store_broker.broker.process.pid, signal.SIGHUP)
    wait_for_reload(lambda: not lets_in(store_broker, "agent-9", "pw-9"))
    with pytest.raises(Refused, match="refused"):
        Session(store_broker.port, username="agent-9", password="pw-9", ca_file=store_broker.ca_file).connect()
