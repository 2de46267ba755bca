"""The core HTTP API: health, metrics, customers, positions, tracks, occupancy, agents, events, OpenAPI.

``/api/occupancy`` is the people estimate (:mod:`aggregator.occupancy_live`); ``/api/zones/occupancy``
counts the open visits (hashed devices) per zone, as before.

Live state (who is in the store now, agents) comes from the ingest pipeline's memory; history
(tracks, events) from SQLite through read-only connections in executor threads, never on the
loop. Every list takes ``limit`` (max 1000) and ``offset``; bad parameters are a 400 naming them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web

from agent.cliutil import package_version
from aggregator.alerts import ALERTS
from aggregator.api.openapi_core import OPENAPI_PATHS as OPENAPI_PATHS
from aggregator.api.openapi_core import SCHEMAS
from aggregator.appkeys import CUSTOMERS, DB_PATH, INGEST, LINK, SETTINGS, STARTED_AT, STORE, STORE_CONFIG
from aggregator.factor_calibration import CalibrationError, add_head_count
from aggregator.http_errors import bad_request, not_found
from aggregator.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from aggregator.metrics import METRICS
from aggregator.store import read_query

T = TypeVar("T")

routes = web.RouteTableDef()

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_OFFSET = 10_000_000
HEALTHY_LAG_S = 5.0
_ID_MAX = 128
MAX_HEAD_COUNT = 100_000  # people counted by hand: beyond this, a typo
EVENT_KINDS = ("enter", "move", "exit", "browsing")
ORDERS = ("asc", "desc")


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(name, f"{name} must be an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise bad_request(name, f"{name} must be between {low} and {high}, got {value}")
    return value


def float_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name, "")
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(name, f"{name} must be a number (epoch seconds), got {raw[:40]!r}") from None
    if not math.isfinite(value) or abs(value) > 1e11:
        raise bad_request(name, f"{name} must be a finite number of epoch seconds")
    return value


def order_param(request: web.Request, default: str) -> str:
    """``order=asc`` (oldest first) or ``desc`` (newest first)."""
    order = request.query.get("order", default)
    if order not in ORDERS:
        raise bad_request("order", f"order must be asc (oldest first) or desc (newest first), got {order[:20]!r}")
    return order


def time_window(request: web.Request, column: str) -> tuple[list[str], list[Any]]:
    """``since`` (inclusive) and ``until`` (exclusive), epoch seconds, as SQL conditions on ``column``."""
    since, until = float_param(request, "since"), float_param(request, "until")
    if since is not None and until is not None and since >= until:
        raise bad_request("until", f"until ({until:g}) must be after since ({since:g})")
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append(f"{column} >= ?")
        params.append(since)
    if until is not None:
        where.append(f"{column} < ?")
        params.append(until)
    return where, params


def page(request: web.Request) -> tuple[int, int]:
    return (int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
            int_param(request, "offset", 0, 0, MAX_OFFSET))


def listing(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def paged(request: web.Request, rows: Sequence[T], render: Callable[[T], Any]) -> web.Response:
    """One page of an in-memory list (``limit``/``offset`` from the query), each row rendered."""
    limit, offset = page(request)
    items = [render(row) for row in rows[offset:offset + limit]]
    return web.json_response(listing(items, len(rows), limit, offset))


async def query(request: web.Request, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, read_query, request.app[DB_PATH], sql, params)


# ----------------------------------------------------------------------------- health and metrics


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """Broker connected, database writable, ingest lag; 503 when something is wrong."""
    app = request.app
    store, ingest, link = app[STORE], app[INGEST], app[LINK]
    c = ingest.counters
    backlog = store.queue_depth + (link.inbox_depth if link else 0)
    lag = c.last_lag_s if backlog else 0.0
    broker_ok = (link.connected and link.subscribed) if link is not None else None
    ok = store.writable and broker_ok is not False and lag < HEALTHY_LAG_S
    body = {"status": "ok" if ok else "degraded", "broker_connected": broker_ok, "db_writable": store.writable,
            "ingest_lag_s": round(lag, 3), "queue_depth": backlog, "uptime_s": round(time.time() - app[STARTED_AT], 1),
            "store": app[STORE_CONFIG].id}
    return web.json_response(body, status=200 if ok else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition, built by prometheus_client (aggregator/metrics.py)."""
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE, "X-Content-Type-Options": "nosniff"})


@routes.get("/api/alerts")
async def alerts(request: web.Request) -> web.Response:
    """Recent alerts (fired and recovered), newest first, and the webhook posts still pending."""
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    return web.json_response(request.app[ALERTS].listing(limit))


# ----------------------------------------------------------------------------- customers


def _customer_id(request: web.Request) -> str:
    cid = request.match_info["id"]
    if not cid or len(cid) > _ID_MAX:
        raise bad_request("id", f"id must be 1..{_ID_MAX} characters")
    return cid


@routes.get("/api/customers")
async def customers(request: web.Request) -> web.Response:
    """Seed 000's customers list, each with its live ``state`` (in store, where) or null."""
    shoppers = request.app[INGEST].shoppers

    def with_state(entry: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        shopper = shoppers.get(entry[0])
        return {**entry[1], "state": shopper.as_dict() if shopper else None}

    return paged(request, list(request.app[CUSTOMERS].items()), with_state)


@routes.get("/api/customers/{id}/track")
async def track(request: web.Request) -> web.Response:
    """Fused positions of one visitor (customer id or hashed device id), oldest first."""
    cid = _customer_id(request)
    limit, offset = page(request)
    since = float_param(request, "since")
    until = float_param(request, "until")
    where, params = ["visitor = ?"], [cid]
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts <= ?")
        params.append(until)
    sql = (f"SELECT ts, x, y, accuracy_m, zone, visit_id FROM sightings WHERE {' AND '.join(where)} "
           "ORDER BY ts, id LIMIT ? OFFSET ?")
    rows = await query(request, sql, (*params, limit, offset))
    known = cid in request.app[CUSTOMERS] or cid in request.app[INGEST].shoppers
    if not rows and offset == 0 and not known:
        exists = await query(request, "SELECT 1 AS one FROM sightings WHERE visitor = ? LIMIT 1", (cid,))
        if not exists:
            raise not_found(f"no customer or visitor {cid!r}")
    return web.json_response({"id": cid, "items": rows, "limit": limit, "offset": offset})


@routes.post("/api/customers/{id}/link")
async def link_customer(request: web.Request) -> web.Response:
    """Link a hashed device id to this loyalty customer (a real loyalty app calls this)."""
    cid = _customer_id(request)
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise bad_request("body", 'a JSON object {"device": "<hashed device id>"} is required') from None
    if not isinstance(body, dict):
        raise bad_request("body", 'a JSON object {"device": "<hashed device id>"} is required')
    device = body.get("device")
    if not isinstance(device, str) or not 0 < len(device) <= _ID_MAX or device != device.strip():
        raise bad_request("device", f"device must be a hashed device id of 1..{_ID_MAX} characters")
    ingest = request.app[INGEST]
    ingest.link(device, cid)
    return web.json_response({"device": device, "customer_id": cid}, status=201)


# ----------------------------------------------------------------------------- live state


@routes.get("/api/positions")
async def positions(request: web.Request) -> web.Response:
    """Everyone in the store now, with the latest fused position."""
    shoppers = sorted(request.app[INGEST].shoppers.values(), key=lambda s: s.visitor)
    return paged(request, shoppers, lambda s: s.as_dict())


@routes.get("/api/zones/occupancy")
async def occupancy(request: web.Request) -> web.Response:
    """Shoppers per zone now (every zone listed, zero included), plus those between zones."""
    counts = {z.name: 0 for z in request.app[STORE_CONFIG].plan.zones}
    outside = 0
    for shopper in request.app[INGEST].shoppers.values():
        if shopper.zone in counts:
            counts[shopper.zone] += 1
        else:
            outside += 1
    zones = [{"zone": z.name, "dep": z.department, "category": z.category, "count": counts[z.name]}
             for z in request.app[STORE_CONFIG].plan.zones]
    return web.json_response({"ts": time.time(), "zones": zones, "outside_zones": outside,
                              "total": sum(counts.values()) + outside})


@routes.get("/api/occupancy")
async def occupancy_estimate(request: web.Request) -> web.Response:
    """People in the store now, and per zone, with a 1-sigma uncertainty and the evidence behind them
    (linked devices, fixtures and neighbours left out, door counts, PIRs: docs/OCCUPANCY.md). The same
    document as the retained MQTT topic ``floorwalker/<store>/occupancy``, plus ``evidence``."""
    ingest = request.app[INGEST]
    live = ingest.occupancy
    return web.json_response(live.document(live.estimate(ingest.stream_now())))


@routes.post("/api/occupancy/head-count")
async def head_count(request: web.Request) -> web.Response:
    """People counted by hand in the store now: kept with the devices the estimate counts now, and the
    store's people-per-device factor from all the counts so far (docs/OCCUPANCY.md) returned, with the
    store.toml line to set it. Changes nothing live: the operator decides."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise bad_request("body", 'a JSON object {"people": <people counted>} is required') from None
    people = body.get("people") if isinstance(body, dict) else None
    if isinstance(people, bool) or not isinstance(people, int | float) or not 0 <= people <= MAX_HEAD_COUNT:
        raise bad_request("people", f"people must be the number of people counted, 0..{MAX_HEAD_COUNT}")
    ingest = request.app[INGEST]
    live = ingest.occupancy
    devices = float(live.estimate(ingest.stream_now()).evidence["weighted_devices"])
    try:
        result = add_head_count(live.head_counts, float(people), devices)
    except CalibrationError as exc:
        raise bad_request("people", str(exc)) from None
    return web.json_response({"people": people, "devices": devices, **result.as_dict()}, status=201)


@routes.get("/api/agents")
async def agents(request: web.Request) -> web.Response:
    """Each agent's availability (retained status) and its last health report."""
    states = sorted(request.app[INGEST].agents.values(), key=lambda a: a.agent)
    return paged(request, states, lambda a: a.as_dict())


@routes.get("/api/events")
async def events(request: web.Request) -> web.Response:
    """Customer-tier events published, newest first (``order=asc``: oldest first), with the total for the
    filter; ``after_id`` gives everything newer, oldest first (a cursor); ``since``/``until`` a time window."""
    limit, offset = page(request)
    kind = request.query.get("kind", "")
    if kind and kind not in EVENT_KINDS:
        raise bad_request("kind", f"kind must be one of {', '.join(EVENT_KINDS)}")
    visitor = request.query.get("visitor", "")
    if len(visitor) > _ID_MAX:
        raise bad_request("visitor", f"visitor must be at most {_ID_MAX} characters")
    after_id = int_param(request, "after_id", 0, 0, 2**62)
    order = order_param(request, "asc" if after_id else "desc")
    where, params = time_window(request, "ts")
    where.insert(0, "id > ?")
    params.insert(0, after_id)
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if visitor:
        where.append("visitor = ?")
        params.append(visitor)
    clause = " AND ".join(where)
    rows = await query(request, f"SELECT id, ts, kind, visitor, x, y, dep FROM customer_events WHERE "
                                f"{clause} ORDER BY id {order.upper()} LIMIT ? OFFSET ?",
                       (*params, limit, offset))
    total = (await query(request, f"SELECT COUNT(*) AS n FROM customer_events WHERE {clause}", tuple(params)))[0]["n"]
    return web.json_response({"items": rows, "total": total, "limit": limit, "offset": offset,
                              "next_after_id": max((r["id"] for r in rows), default=after_id)})


# ----------------------------------------------------------------------------- OpenAPI


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """This API described in OpenAPI 3 (core paths plus every route module's ``OPENAPI_PATHS``)."""
    return web.json_response(build_spec(request.app))


def build_spec(app: web.Application) -> dict[str, Any]:
    import importlib

    from aggregator.api import ROUTE_MODULES

    paths: dict[str, Any] = {}
    for name in ROUTE_MODULES:
        paths.update(getattr(importlib.import_module(name), "OPENAPI_PATHS", {}))
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Floorwalker aggregator", "version": package_version(),  # pyproject's, as --version
                 "description": "Shoppers in a physical store: live positions, tracks, events, agents."},
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "floorwalker_session",
                        "description": "set by POST /login (form field token) for browsers"}}},
    }
    if app[SETTINGS].api_token:
        spec["security"] = [{"bearer": []}, {"session": []}]
    return spec
