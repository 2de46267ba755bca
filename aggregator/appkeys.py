"""Typed keys of the aiohttp application: what every area module may read from ``app[...]``.

Agreed names (docs/API.md): SETTINGS, STORE_CONFIG, BUS, DB_PATH, MQTT, CUSTOMERS, TOPICS.
The rest are the aggregator core's own (store writer, ingest pipeline, MQTT link).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent.config import DeviceConfig, StoreConfig
from agent.contract import CustomerTopics
from aggregator.bus import EventBus
from aggregator.mqtt_link import Publisher
from aggregator.settings import Settings

if TYPE_CHECKING:
    from aggregator.ingest import Ingest
    from aggregator.mqtt_process import ProcessMqttLink
    from aggregator.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE_CONFIG = web.AppKey("store_config", StoreConfig)
BUS = web.AppKey("bus", EventBus)
DB_PATH = web.AppKey("db_path", Path)
MQTT = web.AppKey("mqtt", Publisher)
CUSTOMERS = web.AppKey("customers", dict[str, dict[str, Any]])
TOPICS = web.AppKey("topics", CustomerTopics)

# The core's own.
STORE: web.AppKey[Store] = web.AppKey("store")
INGEST: web.AppKey[Ingest] = web.AppKey("ingest")
LINK: web.AppKey[ProcessMqttLink | None] = web.AppKey("mqtt_link")
STARTED_AT = web.AppKey("started_at", float)
# Every device file of the deployment, validated once by create_app (empty without a devices/ dir).
DEVICES = web.AppKey("devices", tuple[DeviceConfig, ...])
