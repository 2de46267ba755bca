"""Offers in the running aggregator: the thin asyncio layer around :mod:`aggregator.offers`.

``setup(app)`` loads and validates the rules and coupons files (so a bad file fails start-up) and
adds a ``cleanup_ctx`` that restores sequences in progress from SQLite, then runs two consumers:
store browsing events from the bus, and seed 001's click stream on MQTT (env ``CLICK_TOPIC``,
default ``enriched-click-data``; empty disables). The engine runs synchronously on the loop (a
few microseconds per event); its rows go to the aggregator's single SQLite writer, and the consumer
awaits their commit on the loop (reads of the offers' tables run on one worker thread). When a rule
fires: MQTT prediction first (the shopper is waiting), then the bus (``/ws/coupons``, the map), then
SQLite.
Routes: GET /api/offers, /api/offers/log, /api/offers/stats (docs/OFFERS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from agent.contract import Prediction
from aggregator.api.core import int_param
from aggregator.appkeys import BUS, CUSTOMERS, DB_PATH, INGEST, SETTINGS, STORE, STORE_CONFIG
from aggregator.bus import Subscription
from aggregator.events import ShopperEvent
from aggregator.http_errors import ERROR_SCHEMA, bad_request, http_error
from aggregator.mqtt_link import Incoming, MqttLink
from aggregator.offers.coupons import CouponBook
from aggregator.offers.engine import Click
from aggregator.offers.inputs import BadRow, click_from_browsing, click_from_row
from aggregator.offers.persist import OfferStore
from aggregator.offers.rules import load_rules
from aggregator.offers.service import FiredOffer, OfferService

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

DEFAULT_CLICK_TOPIC = "enriched-click-data"
MAX_LIMIT = 1000


class OfferRuntime:
    """The service, its SQLite tables and the thread that reads them, for one application."""

    def __init__(self, service: OfferService, click_topic: str) -> None:
        self.service = service
        self.click_topic = click_topic
        self.store: OfferStore | None = None
        self.link: MqttLink | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offers-db")
        self.bad_rows = 0
        self.fired = 0

    def handle(self, pairs: list[tuple[Click, str | None]]) -> list[FiredOffer]:
        fired: list[FiredOffer] = []
        for click, customer_id in pairs:
            fired += self.service.handle(click, customer_id=customer_id)
        return fired

    async def deliver(self, app: web.Application, fired: list[FiredOffer]) -> None:
        """Publish what fired, then store it with the engine's changes in one transaction."""
        for offer in fired:
            self.fired += 1
            if offer.coupon is not None:  # customer/prediction for a known customer, else the store's shopper topic
                target = offer.customer_id if offer.customer_id is not None else offer.shopper
                app[INGEST].tier.prediction(Prediction(target, offer.coupon, offer.ts), offer=offer.offer,
                                            rule=offer.rule)
            extra: dict[str, Any] = {"offer": offer.offer, "rule": offer.rule}
            if offer.prediction is not None:
                extra["prediction"] = offer.prediction
            app[BUS].publish(ShopperEvent("offer", offer.ts, offer.shopper, customer_id=offer.customer_id,
                                          dep=offer.department, state="offered", extra=extra))
        await self.flush(fired)

    async def flush(self, fired: list[FiredOffer] | None = None) -> None:
        fired = fired or []
        service = self.service
        states = service.engine.take_changes()
        lines, service.pending_log = service.pending_log, []
        if self.store is None or not (states or lines or fired):
            return
        await self.store.write(states=states, offers=[f.row() for f in fired], log_lines=lines, now_ts=time.time())


OFFERS = web.AppKey("offers", OfferRuntime)


def setup(app: web.Application) -> None:
    """Validate the rules and coupons now; start the consumers with the application."""
    store_config = app[STORE_CONFIG]
    rules = load_rules(store_config.offers_file)
    coupons = CouponBook.load(app[SETTINGS].coupons_file or store_config.coupons_file)
    click_topic = os.environ.get("CLICK_TOPIC", DEFAULT_CLICK_TOPIC).strip()
    app[OFFERS] = OfferRuntime(OfferService(rules, coupons), click_topic)
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    rt = app[OFFERS]
    loop = asyncio.get_running_loop()
    rt.store = await loop.run_in_executor(rt.executor, lambda: OfferStore(app[DB_PATH], writer=app[STORE]))
    states = await loop.run_in_executor(rt.executor, rt.store.load_states)
    restored = rt.service.engine.restore(states)
    sub = app[BUS].subscribe(("browsing",))
    tasks = [asyncio.create_task(_consume_browsing(app, rt, sub), name="offers-browsing")]
    clicks: asyncio.Queue[list[Incoming]] = asyncio.Queue()
    settings = app[SETTINGS]
    if settings.mqtt_enabled and rt.click_topic:
        rt.link = MqttLink(settings.mqtt, f"{settings.client_id}-offers", [rt.click_topic],
                           on_batch=clicks.put_nowait)
        rt.link.start(loop)
        tasks.append(asyncio.create_task(_consume_clicks(app, rt, clicks), name="offers-clicks"))
    log.info("event=offers-started rules=%s restored=%d click_topic=%s", rt.service.rules.source, restored,
             rt.click_topic if rt.link else "-")
    try:
        yield
    finally:
        if rt.link is not None:
            rt.link.pause()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sub.close()
        await rt.flush()
        if rt.link is not None:
            await loop.run_in_executor(None, rt.link.stop)
        await loop.run_in_executor(rt.executor, rt.store.close)
        rt.executor.shutdown(wait=True)


async def _consume_browsing(app: web.Application, rt: OfferRuntime, sub: Subscription) -> None:
    customers = app[CUSTOMERS]
    mapping = rt.service.rules.store
    while True:
        events = [await sub.get(), *sub.get_nowait_all()]
        try:
            pairs = [(c, e.customer_id) for e in events
                     if (c := click_from_browsing(e, customers, mapping)) is not None]
            await rt.deliver(app, rt.handle(pairs))
        except Exception:  # one bad batch must not stop offers for everyone
            log.exception("event=offers-batch-failed source=browsing events=%d", len(events))


async def _consume_clicks(app: web.Application, rt: OfferRuntime, queue: asyncio.Queue[list[Incoming]]) -> None:
    while True:
        items = await queue.get()
        pairs: list[tuple[Click, str | None]] = []
        for item in items:
            try:
                click = click_from_row(json.loads(item.payload))
            except (ValueError, BadRow) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                rt.bad_rows += 1
                if rt.bad_rows <= 10 or rt.bad_rows % 1000 == 0:
                    log.warning("event=click-rejected topic=%s reason=%s count=%d", item.topic,
                                getattr(exc, "reason", "bad-json"), rt.bad_rows)
                continue
            pairs.append((click, click.user))
        try:
            await rt.deliver(app, rt.handle(pairs))
        except Exception:
            log.exception("event=offers-batch-failed source=clicks rows=%d", len(pairs))
        if rt.link is not None:
            rt.link.ack([(i.mid, i.qos) for i in items])  # after the commit: a crash redelivers


# ------------------------------------------------------------------------------------------- routes

@routes.get("/api/offers")
async def offers(request: web.Request) -> web.Response:
    """The newest offers (newest first), each with its seed-000 prediction."""
    rt = request.app[OFFERS]
    limit = int_param(request, "limit", 100, 1, MAX_LIMIT)
    customer_id = request.query.get("customer_id")
    if customer_id is not None and not customer_id.strip():
        raise bad_request("customer_id", "a customer id")
    if rt.store is None:
        raise http_error(503, "offers are starting")
    loop = asyncio.get_running_loop()
    items = await loop.run_in_executor(rt.executor, lambda: rt.store.offers(  # type: ignore[union-attr]
        limit=limit, customer_id=customer_id))
    return web.json_response({"items": items})


@routes.get("/api/offers/log")
async def offer_log(request: web.Request) -> web.Response:
    """The newest state-transition lines in seed 001's format, oldest of them first."""
    rt = request.app[OFFERS]
    limit = int_param(request, "limit", 200, 1, MAX_LIMIT)
    if rt.store is None:
        raise http_error(503, "offers are starting")
    loop = asyncio.get_running_loop()
    rows = await loop.run_in_executor(rt.executor, lambda: rt.store.log(limit=limit))  # type: ignore[union-attr]
    return web.json_response({"items": list(reversed(rows))})


@routes.get("/api/offers/stats")
async def offer_stats(request: web.Request) -> web.Response:
    """The engine's counters: what was ignored, refreshed, late, evicted; how many fired."""
    rt = request.app[OFFERS]
    return web.json_response({**rt.service.counts(), "bad_rows": rt.bad_rows,
                              "click_topic": rt.click_topic if rt.link else None,
                              "click_link_connected": bool(rt.link and rt.link.connected)})


def _get(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"get": {"summary": summary, "tags": ["offers"], "parameters": params, "responses": {
        "200": {"description": "docs/OFFERS.md", "content": {"application/json": {"schema": {"type": "object"}}}},
        "400": {"description": "a bad parameter: {error, status, param}",
                "content": {"application/json": {"schema": ERROR_SCHEMA}}}}}}


def _limit(default: int) -> dict[str, Any]:
    return {"name": "limit", "in": "query", "required": False, "description": f"1-{MAX_LIMIT} (default {default})",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}}


OPENAPI_PATHS: dict[str, Any] = {
    "/api/offers": _get("offers fired, newest first: {items: [{ts, shopper, customer_id, rule, offer, department, "
                        "coupon_id, prediction}]}",
                        [_limit(100), {"name": "customer_id", "in": "query", "required": False,
                                       "description": "only this customer's offers", "schema": {"type": "string"}}]),
    "/api/offers/log": _get("state transitions in the retail demo's event-detection log format: "
                            "{items: [{id, ts, line}]}, oldest first",
                            [_limit(200)]),
    "/api/offers/stats": _get("the offer engine's counters", []),
}
