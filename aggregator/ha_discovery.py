"""MQTT conventions for home automation: the aggregator's availability, Home Assistant discovery, visitors today.

Why these three together: they are what a store's existing dashboards (Home Assistant, Node-RED,
anything that speaks MQTT) need to show Floorwalker without custom code, zigbee2mqtt's way:

* ``floorwalker/<store>/aggregator/status``, retained, ``{"state": "online"}`` when the aggregator
  connects and ``{"state": "offline"}`` as its last will or on a clean exit (qos 1). The MQTT link
  publishes both (:attr:`aggregator.mqtt_link.LinkBase.availability`): the will belongs to the
  connection.
* Home Assistant discovery: one retained ``<prefix>/<component>/<object_id>/config`` per entity
  (store occupancy, each zone's occupancy, visitors today, each agent's online state), all on one
  device per store. They point at the retained occupancy topics
  (:func:`agent.contract.occupancy_topic`) and at each agent's retained ``status``. Sent again after
  every reconnect (a broker without persistence forgets retained messages) and when an agent
  appears that was not announced yet.
* ``floorwalker/<store>/visitors/today``, retained: visitors (visits that were not passers-by)
  since local midnight, counted in SQLite once a minute and published when it changes.

Occupancy sensors use the aggregator's availability; agent sensors use none, on purpose: an agent
that is offline is a state ("off"), and its retained status stays true while the aggregator is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from agent.config import StoreConfig
from agent.contract import (
    agent_topic,
    aggregator_status_topic,
    occupancy_topic,
    visitors_today_topic,
    zone_occupancy_topics,
)
from aggregator import __version__
from aggregator.appkeys import DB_PATH, DEVICES, INGEST, LINK, MQTT, STORE_CONFIG
from aggregator.store import read_query

log = logging.getLogger(__name__)

ONLINE = b'{"state":"online"}'
OFFLINE = b'{"state":"offline"}'
CHECK_INTERVAL_S = 1.0  # how often to look for a reconnect or a new agent (cheap: two comparisons)
VISITORS_INTERVAL_S = 60.0
VISITORS_SQL = ("SELECT COUNT(DISTINCT visitor) AS n FROM visits "
                "WHERE start_ts >= ? AND (passerby = 0 OR end_ts IS NULL)")


def availability(store_id: str) -> tuple[str, bytes, bytes]:
    """The aggregator's availability topic with its online and offline (last will) payloads."""
    return aggregator_status_topic(store_id), ONLINE, OFFLINE


def _object_id(store_id: str, *parts: str) -> str:
    return "_".join(("floorwalker", store_id, *parts)).replace("-", "_")


def _device(store: StoreConfig) -> dict[str, Any]:
    return {"identifiers": [f"floorwalker_{store.id}"], "name": store.name, "manufacturer": "Floorwalker",
            "model": "Floorwalker aggregator", "sw_version": __version__}


def _sensor(store: StoreConfig, object_id: str, name: str, state_topic: str, field: str, unit: str,
            state_class: str, icon: str) -> dict[str, Any]:
    topic, online, offline = availability(store.id)
    return {"name": name, "unique_id": object_id, "state_topic": state_topic,
            "value_template": f"{{{{ value_json.{field} }}}}", "unit_of_measurement": unit,
            "state_class": state_class, "icon": icon, "device": _device(store),
            "availability": [{"topic": topic, "value_template": "{{ value_json.state }}",
                              "payload_available": json.loads(online)["state"],
                              "payload_not_available": json.loads(offline)["state"]}]}


def discovery_messages(store: StoreConfig, agents: Iterable[str], prefix: str) -> list[tuple[str, bytes]]:
    """Every retained discovery config for this store: ``(topic, payload)`` pairs."""
    configs: list[tuple[str, str, dict[str, Any]]] = []
    oid = _object_id(store.id, "occupancy")
    configs.append(("sensor", oid, _sensor(store, oid, "People in store", occupancy_topic(store.id), "people",
                                           "people", "measurement", "mdi:account-group")))
    # The estimator's own zone topics (two zones with one slug, or a name without one, included); the
    # object id is the topic's last segment, so it is unique as well.
    for name, topic in zone_occupancy_topics(store.id, [z.name for z in store.plan.zones]).items():
        oid = _object_id(store.id, "zone", topic.rsplit("/", 1)[-1])
        configs.append(("sensor", oid, _sensor(store, oid, f"People in {name}", topic, "people", "people",
                                               "measurement", "mdi:account-multiple")))
    oid = _object_id(store.id, "visitors_today")
    # total_increasing: the count only grows during a day, and its drop at midnight reads as a reset
    configs.append(("sensor", oid, _sensor(store, oid, "Visitors today", visitors_today_topic(store.id),
                                           "visitors", "visitors", "total_increasing", "mdi:walk")))
    for agent in sorted(set(agents)):
        oid = _object_id(store.id, "agent", agent)
        configs.append(("binary_sensor", oid, {
            "name": f"Agent {agent}", "unique_id": oid, "device_class": "connectivity",
            "state_topic": agent_topic(store.id, agent, "status"), "value_template": "{{ value_json.state }}",
            "payload_on": "online", "payload_off": "offline", "device": _device(store)}))
    return [(f"{prefix}/{component}/{oid}/config", json.dumps(config, separators=(",", ":")).encode())
            for component, oid, config in configs]


def local_midnight(now: float, timezone: str) -> tuple[float, str]:
    """Epoch seconds of the last local midnight in the store's time zone, and that date."""
    local = datetime.fromtimestamp(now, ZoneInfo(timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp(), midnight.date().isoformat()


class Announcer:
    """Publishes the discovery configs (again after a reconnect or a new agent) and visitors today."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.store: StoreConfig = app[STORE_CONFIG]
        self.enabled = self.store.home_assistant.enabled
        self.announced_agents: frozenset[str] = frozenset()
        self.announced_connects = -1
        self.discovery_published = 0
        self.visitors: int | None = None
        self._visitors_due = 0.0

    def agents(self) -> frozenset[str]:
        """Agents of the deployment's device files plus every agent heard since start."""
        return frozenset(d.agent_id for d in self.app[DEVICES]) | frozenset(self.app[INGEST].agents)

    def announce_if_needed(self) -> None:
        link = self.app[LINK]
        connects = link.connects if link is not None else 0
        if link is not None and not link.connected:
            return
        agents = self.agents()
        if connects == self.announced_connects and agents <= self.announced_agents:
            return
        for topic, payload in discovery_messages(self.store, agents, self.store.home_assistant.discovery_prefix):
            self.app[MQTT].publish(topic, payload, qos=1, retain=True)
            self.discovery_published += 1
        self.announced_connects, self.announced_agents = connects, agents
        log.info("event=ha-discovery-published agents=%d zones=%d", len(agents), len(self.store.plan.zones))

    async def publish_visitors(self, now: float) -> None:
        since, date = local_midnight(now, self.store.timezone)
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(None, read_query, self.app[DB_PATH], VISITORS_SQL, (since,))
        count = int(rows[0]["n"]) if rows else 0
        if count != self.visitors or now >= self._visitors_due:
            payload = json.dumps({"ts": now, "date": date, "visitors": count}, separators=(",", ":")).encode()
            self.app[MQTT].publish(visitors_today_topic(self.store.id), payload, qos=1, retain=True)
            self.visitors = count
            self._visitors_due = now + VISITORS_INTERVAL_S

    async def run(self) -> None:
        next_count = 0.0
        while True:
            try:
                if self.enabled:
                    self.announce_if_needed()
                if time.monotonic() >= next_count:
                    next_count = time.monotonic() + VISITORS_INTERVAL_S
                    await self.publish_visitors(time.time())
            except Exception:  # a bug here must not end the announcements for good
                log.exception("event=ha-announcer-failed")
            await asyncio.sleep(CHECK_INTERVAL_S)


ANNOUNCER = web.AppKey("ha_announcer", Announcer)


def setup(app: web.Application) -> None:
    """Give the MQTT link its availability topic and start the announcer with the application."""
    link = app[LINK]
    if link is not None:
        link.availability = availability(app[STORE_CONFIG].id)
    app[ANNOUNCER] = Announcer(app)
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[ANNOUNCER].run(), name="ha-announcer")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
