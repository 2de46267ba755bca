"""The aiohttp application factory: configuration, storage, MQTT, ingest and every route module.

``create_app(settings)`` is cheap and synchronous (loads and validates the store files, so a bad
file fails before anything starts); the database, the MQTT connection and the sweeper start in
a ``cleanup_ctx`` and stop in reverse order: stop taking messages, commit (and so acknowledge)
everything queued, then disconnect — what was not acknowledged is redelivered next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.config import DeviceConfig, StoreConfig, load_config_dir
from agent.contract import agent_subscription
from agent.errors import ConfigError
from agent.sdnotify import notify, watchdog_interval_s
from aggregator import alerts, ha_discovery, metrics
from aggregator.api import ROUTE_MODULES
from aggregator.appkeys import (
    BUS,
    CUSTOMERS,
    DB_PATH,
    DEVICES,
    INGEST,
    LINK,
    MQTT,
    SETTINGS,
    STARTED_AT,
    STORE,
    STORE_CONFIG,
    TOPICS,
)
from aggregator.auth import auth_middleware
from aggregator.bus import EventBus
from aggregator.child_process import tune_gc
from aggregator.http_errors import error_middleware
from aggregator.ingest import Ingest
from aggregator.mqtt_link import NullPublisher, Publisher
from aggregator.mqtt_process import ProcessMqttLink
from aggregator.settings import Settings
from aggregator.shipping import CHAIN_SHIPPER, ChainShipper, shipping_lifecycle
from aggregator.store import Store

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 1.0
GC_GEN0_THRESHOLD = 50_000  # see _tune_gc


def load_customers(path: Path) -> dict[str, dict[str, Any]]:
    """Seed 000's customers list, keyed by the customer id as a string."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "(file)", "an existing customers file") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "(syntax)", f"valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise ConfigError(str(path), "(top level)", "a JSON list of customers")
    customers: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(data):
        if not isinstance(item, dict) or item.get("customer_id") is None:
            raise ConfigError(str(path), f"[{i}]", "an object with a customer_id")
        customers[str(item["customer_id"])] = item
    return customers


def _load_config(settings: Settings) -> tuple[StoreConfig, list[DeviceConfig]]:
    return load_config_dir(settings.config_dir)


def create_app(settings: Settings) -> web.Application:
    """The whole aggregator as an aiohttp application (started by ``serve`` or by tests)."""
    store_config, devices = _load_config(settings)
    customers = load_customers(settings.customers_file or store_config.customers_file)
    app = web.Application(middlewares=[error_middleware, auth_middleware(settings.api_token,
                                                                         local_only=settings.local_only)],
                          client_max_size=1024 * 1024)
    bus = EventBus()
    store = Store(settings.db_path, retention_days=settings.retention_days, max_rows=settings.batch_max_rows)
    link: ProcessMqttLink | None = None
    publisher: Publisher
    if settings.mqtt_enabled:
        link = ProcessMqttLink(settings.mqtt, settings.client_id, [agent_subscription(store_config.id)],
                               on_acks_to=store.send_acks_to)  # the writer acknowledges straight to it
        publisher = link
    else:
        publisher = NullPublisher()
    ingest = Ingest(settings, store_config, devices, store, bus, publisher)
    if link is not None:
        link.on_batch = ingest.handle

    app[SETTINGS] = settings
    app[STORE_CONFIG] = store_config
    app[BUS] = bus
    app[DB_PATH] = Path(settings.db_path)
    app[MQTT] = publisher
    app[CUSTOMERS] = customers
    app[TOPICS] = ingest.tier.topics  # with the store file's customer_tier.prefix
    ingest.tier.know(customers, str(store_config.path))
    app[STORE] = store
    app[INGEST] = ingest
    app[LINK] = link
    app[STARTED_AT] = time.time()
    app[DEVICES] = tuple(devices)
    app.cleanup_ctx.append(_core_lifecycle)
    if store_config.chain is not None:  # after the core: stops before the store closes
        shipper = ChainShipper(settings.db_path, store_config.id, store_config.timezone, store_config.chain)
        app[CHAIN_SHIPPER] = shipper
        app.cleanup_ctx.append(lambda _app: shipping_lifecycle(shipper))

    for name in ROUTE_MODULES:
        module = importlib.import_module(name)
        app.router.add_routes(module.routes)
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(app)
    for integration in (ha_discovery, metrics, alerts):  # after the core's lifecycle: they stop first
        integration.setup(app)
    return app


async def _core_lifecycle(app: web.Application) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    store, ingest, link = app[STORE], app[INGEST], app[LINK]
    await store.start()
    await loop.run_in_executor(None, ingest.load_state)
    previous_gc = _tune_gc()
    if link is not None:
        await link.start()
    sweeper = asyncio.create_task(_sweep(ingest), name="visit-sweeper")
    watchdog = asyncio.create_task(_feed_watchdog(), name="systemd-watchdog")
    log.info("event=aggregator-started db=%s store=%s", store.path, app[STORE_CONFIG].id)
    notify("READY=1")  # Type=notify unit (deploy/systemd): started; a no-op outside systemd
    try:
        yield
    finally:
        notify("STOPPING=1")
        for task in (sweeper, watchdog):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if link is not None:
            link.pause()
        await store.stop()  # commits what is queued; the writer acknowledges it to the MQTT process
        if link is not None:
            await link.stop()
        gc.unfreeze()
        gc.set_threshold(*previous_gc)
        log.info("event=aggregator-stopped commits=%d", store.stats.commits)


def _tune_gc() -> tuple[int, int, int]:
    """:func:`aggregator.child_process.tune_gc` for this process; returns the thresholds to restore.

    With CPython's default thresholds the collector took ~9 µs per message in the ingest benchmark
    (``ingest.gc_us_per_msg``), a sixth of the aggregator's CPU, most of it walking the same
    long-lived objects again; after: ~0.4 µs. Unfrozen at shutdown, so an application started
    and stopped many times in one process (the tests) does not pin what it left behind."""
    previous = gc.get_threshold()
    tune_gc(GC_GEN0_THRESHOLD)
    return previous


async def _feed_watchdog() -> None:
    """Ping systemd's watchdog (WatchdogSec= in the unit) from the event loop itself, so a loop that
    stops turning gets the service restarted. Nothing to do outside systemd."""
    interval_s = watchdog_interval_s()
    if interval_s is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval_s)


async def _sweep(ingest: Ingest) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        try:
            ingest.sweep()
        except Exception:  # the sweeper must outlive a bug in one pass
            log.exception("event=sweep-failed")
