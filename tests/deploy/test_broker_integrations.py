"""The store broker's ACL lets the aggregator publish its integration topics and a reader (Home Assistant) read them."""

from __future__ import annotations

import pytest

from agent import contract as c
from tests.deploy.mqtt_tls import Session

pytestmark = pytest.mark.deploy

STORE = "store-1"
TOPICS = ("homeassistant/sensor/floorwalker_store_1_occupancy/config", c.occupancy_topic(STORE),
          c.occupancy_topic(STORE, "Women's"), c.visitors_today_topic(STORE), c.aggregator_status_topic(STORE),
          c.shopper_topic(STORE, "enter"), "store-a/customer/enter")


def test_a_reader_gets_what_the_aggregator_publishes_for_integrations(store_broker) -> None:
    with Session(store_broker.port, **store_broker.creds("aggregator")) as agg, \
            Session(store_broker.port, **store_broker.creds("viewer")) as viewer, \
            Session(store_broker.port, **store_broker.creds("agent-1")) as agent:
        viewer.subscribe("homeassistant/#", "floorwalker/#", "+/customer/#")
        for topic in TOPICS:
            agg.publish(topic, b"{}")
        viewer.wait_for(len(TOPICS))
        # an agent may not speak for the aggregator; its own status, allowed and sent after on the same
        # connection, arrives after anything refused would have
        agent.publish(c.occupancy_topic(STORE), b'{"people": 99}')
        agent.publish(c.agent_topic(STORE, "agent-1", "status"), b'{"agent":"agent-1","state":"online","ts":1}')
        viewer.wait_for(len(TOPICS) + 1)
        got = [m.topic for m in viewer.messages]
    assert got == [*TOPICS, c.agent_topic(STORE, "agent-1", "status")]
