"""Home Assistant discovery and the aggregator's availability, as Home Assistant sees them on a real broker.

The schema below is Home Assistant's documented configuration of MQTT discovery and of its MQTT
``sensor`` and ``binary_sensor`` platforms (home-assistant.io/integrations/mqtt,
/sensor.mqtt, /binary_sensor.mqtt): the keys each accepts, their types, and what is required.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_store
from agent.contract import agent_topic, occupancy_topic, visitors_today_topic, zone_slug
from agent.errors import ConfigError
from aggregator.app import create_app
from aggregator.appkeys import INGEST, LINK, STORE_CONFIG
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from tests.aggregator.conftest import wait_until
from tests.conftest import CONFIG_DIR
from tests.mqtt_helpers import Collector, Received, publish

pytestmark = pytest.mark.broker

STATUS = "floorwalker/demo/aggregator/status"
TEMPLATE = str
COMMON = {"name": (str, type(None)), "unique_id": str, "object_id": str, "state_topic": str,
          "value_template": TEMPLATE, "device_class": str, "icon": str, "device": dict, "availability": list,
          "availability_mode": str, "availability_topic": str, "availability_template": TEMPLATE,
          "payload_available": str, "payload_not_available": str, "expire_after": int, "force_update": bool,
          "json_attributes_topic": str, "json_attributes_template": TEMPLATE, "qos": int,
          "enabled_by_default": bool, "entity_category": str, "encoding": str, "default_entity_id": str}
SCHEMAS: dict[str, dict[str, Any]] = {
    "sensor": {**COMMON, "unit_of_measurement": str, "state_class": str, "suggested_display_precision": int,
               "last_reset_value_template": TEMPLATE, "options": list},
    "binary_sensor": {**COMMON, "payload_on": str, "payload_off": str, "off_delay": int},
}
REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"}}
DEVICE = {"identifiers": (list, str), "connections": list, "name": str, "manufacturer": str, "model": str,
          "model_id": str, "sw_version": str, "hw_version": str, "serial_number": str, "via_device": str,
          "configuration_url": str, "suggested_area": str}
AVAILABILITY = {"topic": str, "payload_available": str, "payload_not_available": str, "value_template": TEMPLATE}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
# home-assistant.io/integrations/binary_sensor/#device-class
BINARY_DEVICE_CLASSES = {"battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
                         "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
                         "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
                         "tamper", "update", "vibration", "window"}
DISCOVERY_TOPIC = re.compile(r"^homeassistant/(sensor|binary_sensor)/([a-zA-Z0-9_-]+)/config$")
VALUE_JSON = re.compile(r"^\{\{ value_json\.([a-z_]+) \}\}$")


def check_keys(where: str, config: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, value in config.items():
        assert key in schema, f"{where}: {key!r} is not a documented option"
        assert isinstance(value, schema[key]), f"{where}: {key} = {value!r} is not {schema[key]}"


def check_entity(topic: str, config: dict[str, Any]) -> str:
    """Home Assistant's discovery schema for one config message; returns the component."""
    match = DISCOVERY_TOPIC.match(topic)
    assert match, f"{topic}: not <prefix>/<component>/<object_id>/config"
    component = match.group(1)
    check_keys(topic, config, SCHEMAS[component])
    assert REQUIRED[component] <= config.keys(), f"{topic}: missing {REQUIRED[component] - config.keys()}"
    assert not set("+#") & set(config["state_topic"])
    assert config["unique_id"], "a device block works only with a unique_id"
    check_keys(f"{topic} device", config["device"], DEVICE)
    assert config["device"]["identifiers"]
    if "state_class" in config:
        assert config["state_class"] in STATE_CLASSES
    if component == "binary_sensor" and "device_class" in config:
        assert config["device_class"] in BINARY_DEVICE_CLASSES, config["device_class"]
    if component == "sensor":  # ours have no device class (so HA takes any unit) and always name their unit
        assert "device_class" not in config and config.get("unit_of_measurement")
    for item in config.get("availability", []):
        check_keys(f"{topic} availability", item, AVAILABILITY)
        assert "topic" in item
    assert VALUE_JSON.match(config["value_template"]), config["value_template"]
    return component


def render(template: str, payload: bytes) -> Any:
    """What HA's ``{{ value_json.<field> }}`` gives for this payload (the only template form used)."""
    match = VALUE_JSON.match(template)
    assert match
    return json.loads(payload)[match.group(1)]


def latest(messages: list[Received], topic: str) -> Received:
    return [m for m in messages if m.topic == topic][-1]


async def test_discovery_as_home_assistant_reads_it(aiohttp_client, settings: Settings, mqtt_broker: Broker) -> None:
    host, port = mqtt_broker.host, mqtt_broker.port
    status = agent_topic("demo", "agent-1", "status")
    await asyncio.to_thread(publish, host, port, [(status, b'{"agent":"agent-1","state":"online","ts":1.0}')],
                            retain=True)
    client = await aiohttp_client(create_app(settings))
    store = client.app[STORE_CONFIG]
    # nothing else publishes the occupancy topics here: the states below are the aggregator's own
    expected = 1 + len(store.plan.zones) + 1 + 4  # store, zones, visitors today, the four device files' agents
    with Collector(host, port, "homeassistant/#") as early:
        await asyncio.to_thread(early.wait_for, expected)
    # Home Assistant, started later, subscribes to <prefix>/# and then to every topic a config names
    with Collector(host, port, "homeassistant/#") as ha:
        configs = {m.topic: json.loads(m.payload) for m in await asyncio.to_thread(ha.wait_for, expected)}
        assert all(m.retain for m in ha.messages)
    assert len(configs) == expected
    components = [check_entity(topic, config) for topic, config in configs.items()]
    assert components.count("binary_sensor") == 4
    assert len({c["unique_id"] for c in configs.values()}) == expected
    named = {c["state_topic"]: c for c in configs.values()}
    assert occupancy_topic("demo") in named and visitors_today_topic("demo") in named
    for zone in store.plan.zones:
        assert f"floorwalker/demo/occupancy/{zone_slug(zone.name)}" in named
    state_topics = sorted(named)
    # the estimator's first store and zone topics are out (retained) before Home Assistant subscribes to them
    await wait_until(lambda: client.app[INGEST].occupancy.published >= 1 + len(store.plan.zones))
    with Collector(host, port, *state_topics, STATUS) as states:
        await asyncio.to_thread(states.wait_for, len(state_topics) - 3 + 1)  # agents 2-4 never spoke
        await wait_until(lambda: any(m.topic == visitors_today_topic("demo") for m in states.messages))
        got = list(states.messages)
    assert all(m.retain for m in got)
    for topic, config in named.items():
        if config["state_topic"].endswith("/status") and not any(m.topic == topic for m in got):
            continue  # an agent that never published its status: HA shows "unknown", as it should
        value = render(config["value_template"], latest(got, topic).payload)
        if "payload_on" in config:
            assert value in (config["payload_on"], config["payload_off"])
        else:
            assert isinstance(value, int) and value >= 0
        for item in config.get("availability", []):
            assert render(item["value_template"], latest(got, item["topic"]).payload) == item["payload_available"]
    store_now = latest(got, occupancy_topic("demo")).payload  # the estimator's, retained: {"people": 0, ...}
    assert render(named[occupancy_topic("demo")]["value_template"], store_now) == json.loads(store_now)["people"] == 0
    assert render(named[status]["value_template"], latest(got, status).payload) == "online"


async def test_a_new_agent_is_announced_and_a_reconnect_announces_again(aiohttp_client, settings: Settings,
                                                                       mqtt_broker: Broker) -> None:
    host, port = mqtt_broker.host, mqtt_broker.port
    client = await aiohttp_client(create_app(settings))
    link = client.app[LINK]
    with Collector(host, port, "homeassistant/binary_sensor/#", STATUS) as ha:
        await asyncio.to_thread(ha.wait_for, 5)
        new_status = agent_topic("demo", "agent-9", "status")
        await asyncio.to_thread(publish, host, port, [(new_status, b'{"agent":"agent-9","state":"online","ts":2.0}')])
        await wait_until(lambda: any("agent_9" in m.topic for m in ha.messages))
        before = sum(1 for m in ha.messages if m.topic.startswith("homeassistant/"))
        pid = link.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # the connection dies without a DISCONNECT: the broker sends the will
        await wait_until(lambda: any(m.topic == STATUS and json.loads(m.payload)["state"] == "offline"
                                     for m in ha.messages), timeout_s=20)
        await wait_until(lambda: sum(1 for m in ha.messages if m.topic.startswith("homeassistant/")) >= before + 5,
                         timeout_s=20)
        await wait_until(lambda: json.loads(latest(ha.messages, STATUS).payload)["state"] == "online")


async def test_availability_is_offline_after_a_clean_exit(aiohttp_client, settings: Settings,
                                                          mqtt_broker: Broker) -> None:
    client = await aiohttp_client(create_app(settings))
    with Collector(mqtt_broker.host, mqtt_broker.port, STATUS) as watcher:
        await asyncio.to_thread(watcher.wait_for, 1)
        assert json.loads(watcher.messages[0].payload) == {"state": "online"}
        await client.close()
        await wait_until(lambda: json.loads(watcher.messages[-1].payload) == {"state": "offline"})
    with Collector(mqtt_broker.host, mqtt_broker.port, STATUS) as late:  # a subscriber arriving afterwards
        retained = (await asyncio.to_thread(late.wait_for, 1))[0]
    assert retained.retain and json.loads(retained.payload) == {"state": "offline"}


async def test_discovery_off_and_another_prefix(aiohttp_client, settings: Settings, mqtt_broker: Broker,
                                                config_dir: Path) -> None:
    store_file = config_dir / "store.toml"
    text = store_file.read_text()
    store_file.write_text(text.replace('discovery_prefix = "homeassistant"', 'discovery_prefix = "ha-test"'))
    off_dir = config_dir.parent / "off"
    off_dir.mkdir()
    (off_dir / "store.toml").write_text(text.replace("[home_assistant]\nenabled = true",
                                                     "[home_assistant]\nenabled = false"))
    for name in ("customers.json", "coupons.json", "offers.toml", "store-plan-pts.png"):
        (off_dir / name).write_bytes((config_dir / name).read_bytes())
    with Collector(mqtt_broker.host, mqtt_broker.port, "ha-test/#", "homeassistant/#",
                   visitors_today_topic("demo")) as ha:
        await aiohttp_client(create_app(replace(settings, config_dir=config_dir)))
        await wait_until(lambda: any(m.topic.startswith("ha-test/") for m in ha.messages))
        await wait_until(lambda: any(m.topic == visitors_today_topic("demo") for m in ha.messages))
        assert not any(m.topic.startswith("homeassistant/") for m in ha.messages)
    with Collector(mqtt_broker.host, mqtt_broker.port, "homeassistant/#", visitors_today_topic("demo")) as ha:
        await aiohttp_client(create_app(replace(settings, config_dir=off_dir, client_id=settings.client_id + "-off")))
        # The announcer publishes discovery before visitors in the same pass: once this app's visitors count
        # arrived (live, so not flagged retained; the first app's retained one came at subscription), none came.
        await wait_until(lambda: any(m.topic == visitors_today_topic("demo") and not m.retain for m in ha.messages))
        assert not any(m.topic.startswith("homeassistant/") for m in ha.messages)


@pytest.mark.parametrize(("table", "field"), [
    ('[home_assistant]\nenabled = "yes"', "home_assistant.enabled"),
    ('[home_assistant]\ndiscovery_prefix = "ha/#"', "home_assistant.discovery_prefix"),
    ('[home_assistant]\ndiscovery_prefix = "ha/"', "home_assistant.discovery_prefix"),
    ('[home_assistant]\nenable = true', "home_assistant.enable"),
])
def test_bad_home_assistant_settings_name_the_field(config_dir: Path, table: str, field: str) -> None:
    store = config_dir / "store.toml"
    text = store.read_text()
    start = text.index("[home_assistant]")
    store.write_text(text[:start] + table + text[text.index("\n\n", start):])
    with pytest.raises(ConfigError) as err:
        load_store(store)
    assert field in str(err.value) and "store.toml" in str(err.value) and "\n" not in str(err.value)


def test_zones_whose_names_share_a_slug_or_have_none_point_at_the_estimators_topics() -> None:
    """Discovery names the topics the occupancy estimator publishes, one entity per zone: "Men's" and "Mens"
    share the slug ``mens`` and "???" has none (the estimator uses ``mens-2`` and ``zone-3``)."""
    from agent.geometry import Zone
    from aggregator.ha_discovery import discovery_messages
    from aggregator.occupancy_live import LiveOccupancy

    base = load_store(CONFIG_DIR / "store.toml")
    zones = (Zone("Men's", "clothing", ((0, 0), (10, 0), (10, 10))),
             Zone("Mens", "clothing", ((20, 0), (30, 0), (30, 10))),
             Zone("???", "other", ((40, 0), (50, 0), (50, 10))))
    store = replace(base, plan=replace(base.plan, zones=zones))

    class Nowhere:
        def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
            pass

    published = LiveOccupancy(store, Nowhere()).zone_topics  # type: ignore[arg-type]
    configs = {t: json.loads(p) for t, p in discovery_messages(store, ["agent-1"], "homeassistant")}
    for topic, config in configs.items():
        check_entity(topic, config)
    zone_entities = {c["name"]: c for c in configs.values() if c["name"].startswith("People in ") and
                     c["name"] != "People in store"}
    assert {name[len("People in "):]: c["state_topic"] for name, c in zone_entities.items()} == published
    assert len({c["unique_id"] for c in configs.values()}) == len(configs) == 1 + 3 + 1 + 1
