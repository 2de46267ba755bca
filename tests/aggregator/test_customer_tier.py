"""The customer tier as the retail demo's own services read it: integer ids of known customers only.

``demo_accepts`` is the demo's event model (issue 20): ``id`` typed as an integer and looked up in
customers.json, ``ts`` an integer, ``x``/``y`` integers on moves and browsing, ``dep`` a string on
browsing. Every ``customer/*`` message of a mock run must pass it; anonymous shoppers arrive in the
same shapes on ``floorwalker/<store>/shopper/<kind>``, or with integer ids above every customer id.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_store
from agent.errors import ConfigError
from aggregator.app import create_app
from aggregator.appkeys import INGEST, LINK, TOPICS
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from tests.agent.agentproc import agent_env, start_agent, stop_agent
from tests.aggregator import agents
from tests.aggregator.conftest import wait_until
from tests.conftest import CONFIG_DIR
from tests.mqtt_helpers import Collector, Received, publish

pytestmark = pytest.mark.broker

CUSTOMERS = {int(c["customer_id"]) for c in json.loads((CONFIG_DIR / "customers.json").read_text())}
FIELDS = {"enter": ("id", "ts"), "exit": ("id", "ts"), "move": ("id", "ts", "x", "y"),
          "browsing": ("id", "ts", "x", "y", "dep")}


def demo_shape(kind: str, payload: dict[str, Any]) -> str | None:
    """Why the demo's model refuses the fields it types (None: the shape is fine), ``id`` aside."""
    for field in FIELDS[kind]:
        value = payload.get(field)
        wanted = str if field == "dep" else int
        if type(value) is not wanted:
            return f"{field}={value!r} is not {wanted.__name__}"
    return None


def demo_accepts(message: Received) -> str | None:
    kind = message.topic.rsplit("/", 1)[-1]
    payload = json.loads(message.payload)
    if kind == "prediction":  # an offer that fired during the run: the customer's id is what its phone view opens
        customer, coupon = payload.get("customer"), payload.get("coupon")
        if not isinstance(customer, dict) or not isinstance(coupon, dict) or type(payload.get("ts")) is not int:
            return f"not a prediction: {payload!r}"
        cid = customer.get("id")
    elif kind not in FIELDS:
        return f"{message.topic}: not a topic of the retail demo"
    elif (problem := demo_shape(kind, payload)) is not None:
        return problem
    else:
        cid = payload["id"]
    return None if type(cid) is int and cid in CUSTOMERS else f"id {cid!r} is not in customers.json"


def test_the_demo_model_refuses_what_the_retail_demo_refuses() -> None:
    """The check itself: string ids, unknown ids, float positions and foreign topics all fail it."""
    def msg(topic: str, payload: object) -> Received:
        return Received(topic, json.dumps(payload).encode(), False, 0)

    known = min(CUSTOMERS)
    assert demo_accepts(msg("customer/move", {"id": known, "ts": 1, "x": 2, "y": 3})) is None
    assert demo_accepts(msg("customer/prediction", {"customer": {"id": known}, "coupon": {}, "ts": 1})) is None
    for topic, payload in [("customer/enter", {"id": "d-1f", "ts": 1}), ("customer/enter", {"id": str(known), "ts": 1}),
                           ("customer/enter", {"id": max(CUSTOMERS) + 1, "ts": 1}),
                           ("customer/move", {"id": known, "ts": 1, "x": 2.5, "y": 3}),
                           ("customer/browsing", {"id": known, "ts": 1, "x": 2, "y": 3}),
                           ("customer/exit", {"id": known, "ts": 1.5}),
                           ("customer/prediction", {"customer": {"id": "web-user"}, "coupon": {}, "ts": 1}),
                           ("customer/focus", {"id": known, "ts": 1})]:
        assert demo_accepts(msg(topic, payload)) is not None, (topic, payload)


def with_tier(config_dir: Path, table: str) -> Path:
    store = config_dir / "store.toml"
    text = store.read_text()
    start = text.index("[customer_tier]")
    end = text.index("\n\n", start)
    store.write_text(text[:start] + table + text[end:])
    return config_dir


async def test_every_customer_message_of_a_mock_run_is_one_the_demo_accepts(
        aiohttp_client, settings: Settings, mqtt_broker: Broker, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(settings))
    await wait_until(lambda: client.app[LINK].subscribed)
    env = agent_env(mqtt_broker.port, FLOORWALKER_STATE_DIR=str(tmp_path / "var"), LOG_LEVEL="INFO")
    env.pop("FLOORWALKER_STORE_SECRET")  # mock accepts the demo's CHANGE-ME secret, as the aggregator's store does
    with Collector(mqtt_broker.host, mqtt_broker.port, "customer/#", "floorwalker/demo/shopper/#") as seen:
        procs = [start_agent("mock", "--config", str(CONFIG_DIR / "devices" / f"{agent}.toml"), "--seed", "11",
                             "--shoppers", "30", "--loyalty-share", "0.5", env=env,
                             stderr_path=tmp_path / f"{agent}.log") for agent in ("agent-1", "agent-2")]
        try:
            def enough() -> bool:
                topics = [m.topic for m in list(seen.messages)]
                return (sum(t == "customer/enter" for t in topics) >= 2 and "customer/move" in topics
                        and sum(t == "floorwalker/demo/shopper/enter" for t in topics) >= 2)
            await wait_until(enough, timeout_s=90, interval_s=0.2)
        finally:
            codes = [stop_agent(p) for p in procs]
        messages = list(seen.messages)
    assert codes == [0, 0]
    customer = [m for m in messages if m.topic.startswith("customer/")]
    refused = [(m.topic, m.payload, why) for m in customer if (why := demo_accepts(m)) is not None]
    assert not refused, refused[:5]
    anonymous = [m for m in messages if m.topic.startswith("floorwalker/demo/shopper/")]
    for m in anonymous:  # the same shapes, with the hashed device id the demo could not look up
        payload = json.loads(m.payload)
        assert isinstance(payload["id"], str) and payload["id"].startswith("d-")
        assert demo_shape(m.topic.rsplit("/", 1)[-1], {**payload, "id": 0}) is None
    tier = client.app[INGEST].tier
    assert sum(tier.anonymous.values()) >= len(anonymous)


async def test_integer_ids_for_anonymous_shoppers_behind_the_switch(aiohttp_client, settings: Settings,
                                                                    mqtt_broker: Broker, config_dir: Path) -> None:
    config = with_tier(config_dir, '[customer_tier]\nanonymous = "integer-ids"\nanonymous_id_base = 2000')
    client = await aiohttp_client(create_app(replace(settings, config_dir=config)))
    await wait_until(lambda: client.app[LINK].subscribed)
    t0 = time.time() - 20
    traffic = [agents.link("agent-1", 0, t0, "d-known", "7"), *agents.visit("d-known", t0, seq0=1),
               *agents.visit("d-anon", t0, seq0=100)]
    with Collector(mqtt_broker.host, mqtt_broker.port, "customer/enter", "floorwalker/demo/shopper/#") as seen:
        await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, traffic)
        await asyncio.to_thread(seen.wait_for, 2)
    ids = sorted(json.loads(m.payload)["id"] for m in seen.messages)
    tier = client.app[INGEST].tier
    assert all(m.topic == "customer/enter" for m in seen.messages)
    assert ids == [7, tier.anonymous_id("d-anon")] and 2000 <= ids[1] < 2000 + 10**9
    assert tier.anonymous_id("d-anon") == tier.anonymous_id("d-anon") != tier.anonymous_id("d-other")


async def test_a_prefix_keeps_two_stores_apart(aiohttp_client, settings: Settings, mqtt_broker: Broker,
                                               config_dir: Path) -> None:
    config = with_tier(config_dir, '[customer_tier]\nprefix = "store-a"')
    client = await aiohttp_client(create_app(replace(settings, config_dir=config)))
    assert client.app[TOPICS].prediction == "store-a/customer/prediction"  # offers publish there too
    await wait_until(lambda: client.app[LINK].subscribed)
    t0 = time.time() - 20
    traffic = [agents.link("agent-1", 0, t0, "d-known", "7"), *agents.visit("d-known", t0, seq0=1)]
    with Collector(mqtt_broker.host, mqtt_broker.port, "#") as seen:
        await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, traffic)
        await wait_until(lambda: any(m.topic == "store-a/customer/exit" for m in seen.messages))
    topics = {m.topic for m in seen.messages}
    assert {"store-a/customer/enter", "store-a/customer/move"} <= topics
    assert not any(t.startswith("customer/") for t in topics)


@pytest.mark.parametrize(("table", "field"), [
    ('[customer_tier]\nanonymous = "strings"', "customer_tier.anonymous"),
    ('[customer_tier]\nprefix = "a/#"', "customer_tier.prefix"),
    ('[customer_tier]\nprefix = "/a"', "customer_tier.prefix"),
    ('[customer_tier]\nanonymous_id_base = 0', "customer_tier.anonymous_id_base"),
    ('[customer_tier]\nprefx = "a"', "customer_tier.prefx"),
])
def test_bad_tier_settings_name_the_field(config_dir: Path, table: str, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_store(with_tier(config_dir, table) / "store.toml")
    assert field in str(err.value) and "store.toml" in str(err.value)


def test_an_id_range_that_meets_the_customers_is_refused(config_dir: Path, settings: Settings) -> None:
    config = with_tier(config_dir, '[customer_tier]\nanonymous = "integer-ids"\nanonymous_id_base = 40')
    with pytest.raises(ConfigError, match=r"anonymous_id_base.*largest is 46"):
        create_app(replace(settings, config_dir=config))
