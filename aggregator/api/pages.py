"""The live map's pages and the few endpoints only the map needs.

``GET /`` (the map), ``GET /phone/{customer_id}`` (a shopper's phone), ``GET /static/{name}``
(the map's plain ES modules and stylesheet, no build step), ``GET /api/store`` (plan, zones,
doors, every sensor of every device file), ``GET /api/store/background`` (the plan picture),
``GET /api/heatmap?minutes=N`` (recent sightings binned on a grid) and ``POST /api/new_scenario``
(the scenario tab: validated, framed and interpolated here, then published on the store's scenario
topic so the mock agents play it through their simulated sensors).

Static assets carry no data and are served without a session (the login page needs its
stylesheet); the pages and APIs go through the aggregator's auth middleware, and ``setup`` installs
the login routes (aggregator/api/login.py) that give a browser its session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from agent.config import DeviceConfig, StoreConfig
from agent.contract import encode_scenario, scenario_topic
from aggregator.api import login
from aggregator.api.core import int_param
from aggregator.appkeys import CUSTOMERS, DB_PATH, DEVICES, MQTT, STORE_CONFIG
from aggregator.http_errors import ERROR_SCHEMA, bad_request, not_found
from aggregator.scenario_builder import ScenarioError, build, duration_s, parse_request
from aggregator.store import read_query

log = logging.getLogger(__name__)

WEB_DIR: Final = Path(__file__).resolve().parent.parent / "web"
CONTENT_TYPES: Final = {
    ".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
    ".ico": "image/x-icon", ".json": "application/json",
}
_STATIC_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
HEATMAP_CELL_PX_DEFAULT: Final = 40
HEATMAP_MINUTES_DEFAULT: Final = 15
HEATMAP_MINUTES_MAX: Final = 24 * 60
MAX_SCENARIO_BODY_BYTES: Final = 256 * 1024

SENSORS: Final = web.AppKey("pages_sensors", dict)  # the device files' sensors, parsed once by setup()

routes = web.RouteTableDef()


def _file_response(path: Path) -> web.FileResponse:
    resp = web.FileResponse(path, headers={"Cache-Control": "no-cache"})
    resp.content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return resp


# ----------------------------------------------------------------------------- pages


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    return _file_response(WEB_DIR / "index.html")


@routes.get("/phone/{customer_id}")
async def phone(request: web.Request) -> web.FileResponse:
    """The phone page reads its customer id from the URL itself; nothing is templated in."""
    return _file_response(WEB_DIR / "phone.html")


@routes.get("/static/{name}")
async def static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    path = WEB_DIR / name
    if not _STATIC_NAME.match(name) or ".." in name or path.suffix.lower() not in CONTENT_TYPES or not path.is_file():
        raise not_found(f"no static file {name[:40]!r}")
    return _file_response(path)


# ----------------------------------------------------------------------------- store


def _sensors(devices: tuple[DeviceConfig, ...], store: StoreConfig) -> dict[str, Any]:
    """Every sensor of every device file, with a plan position for the map."""
    sensors: list[dict[str, Any]] = []
    for device in devices:
        agent = device.agent_id
        for s in device.sniffers:
            sensors.append({"agent": agent, "kind": "sniffer", "id": s.id,
                            "x": s.position_px[0], "y": s.position_px[1]})
        for p in device.pirs:
            zone = store.plan.zone_named(p.zone)
            cx, cy = zone.centroid if zone else (0.0, 0.0)
            sensors.append({"agent": agent, "kind": "pir", "id": p.id, "zone": p.zone, "x": cx, "y": cy})
        if device.door is not None:
            sensors.append({"agent": agent, "kind": "door", "id": device.door.id,
                            "x": store.entrance[0], "y": store.entrance[1]})
    # A bad device file already stopped create_app (validated once, at start-up): no errors to list.
    return {"sensors": sensors, "errors": []}


def setup(app: web.Application) -> None:
    """The map's sensor list, from the device files create_app already loaded and validated, and
    the login routes the pages need behind a token."""
    app[SENSORS] = _sensors(app[DEVICES], app[STORE_CONFIG])
    login.setup(app)


OPTIONAL_ENDPOINTS: Final = {"offers": "/api/offers", "offer_log": "/api/offers/log",
                               "stats_daily": "/api/stats/daily", "positions": "/api/positions",
                               "agents": "/api/agents", "customers": "/api/customers", "dashboard": "/dashboard"}


def available_endpoints(app: web.Application) -> dict[str, bool]:
    """Which optional APIs this aggregator serves, so the page never asks for one that is not there
    (areas are route modules; a store may run without offers or analytics)."""
    paths = {r.canonical for r in app.router.resources()}
    return {name: path in paths for name, path in OPTIONAL_ENDPOINTS.items()}


def store_document(store: StoreConfig, sensors: dict[str, Any], endpoints: dict[str, bool]) -> dict[str, Any]:
    plan = store.plan
    return {
        "id": store.id,
        "name": store.name,
        "timezone": store.timezone,
        "width_px": plan.width_px,
        "height_px": plan.height_px,
        "metres_per_px": plan.metres_per_px,
        "zones": [{"name": z.name, "category": z.category, "department": z.department,
                   "polygon": [[x, y] for x, y in z.polygon]} for z in plan.zones],
        "entrance": {"x": store.entrance[0], "y": store.entrance[1]},
        "exit": {"x": store.exit[0], "y": store.exit[1]},
        "background_url": "/api/store/background" if store.background_image else None,
        "sensors": sensors["sensors"],
        "agents": sorted({s["agent"] for s in sensors["sensors"]}),
        "device_errors": sensors["errors"],
        "endpoints": endpoints,
    }


@routes.get("/api/store")
async def get_store(request: web.Request) -> web.Response:
    """Everything the map draws that does not move: plan, zones, doors and sensors."""
    doc = store_document(request.app[STORE_CONFIG], request.app[SENSORS], available_endpoints(request.app))
    return web.json_response(doc)


@routes.get("/api/store/background")
async def store_background(request: web.Request) -> web.FileResponse:
    image = request.app[STORE_CONFIG].background_image
    if image is None or not image.is_file():
        raise not_found("no background image configured")
    return _file_response(image)


# ----------------------------------------------------------------------------- heat map


def heatmap_grid(db_path: Path, since_ts: float, cell_px: int, width_px: int, height_px: int) -> dict[str, Any]:
    """Sightings since ``since_ts`` counted per ``cell_px`` square (blocking: run in a thread).

    Returns a dense row-major ``counts`` list; a missing database or table is an empty grid
    (a store that has seen nobody yet), not an error."""
    cols = -(-width_px // cell_px)
    rows = -(-height_px // cell_px)
    counts = [0] * (cols * rows)
    total = 0
    try:
        found = read_query(
            db_path,
            "SELECT CAST(x / ? AS INTEGER) AS c, CAST(y / ? AS INTEGER) AS r, COUNT(*) AS n "
            "FROM sightings WHERE ts >= ? AND x IS NOT NULL AND y IS NOT NULL GROUP BY c, r",
            (cell_px, cell_px, since_ts))
    except sqlite3.OperationalError as exc:
        log.info("event=heatmap_empty reason=%s", str(exc)[:80])
        found = []
    for row in found:
        c = min(max(int(row["c"]), 0), cols - 1)
        r = min(max(int(row["r"]), 0), rows - 1)
        counts[r * cols + c] += int(row["n"])
        total += int(row["n"])
    return {"cell_px": cell_px, "cols": cols, "rows": rows, "counts": counts,
            "max": max(counts) if counts else 0, "total": total}


@routes.get("/api/heatmap")
async def heatmap(request: web.Request) -> web.Response:
    """``?minutes=N`` (1..1440, default 15) ``&cell_px=C`` (10..400, default 40)."""
    minutes = int_param(request, "minutes", HEATMAP_MINUTES_DEFAULT, 1, HEATMAP_MINUTES_MAX)
    cell_px = int_param(request, "cell_px", HEATMAP_CELL_PX_DEFAULT, 10, 400)
    plan = request.app[STORE_CONFIG].plan
    now = time.time()
    grid = await asyncio.to_thread(heatmap_grid, request.app[DB_PATH], now - minutes * 60.0, cell_px,
                                   plan.width_px, plan.height_px)
    grid["minutes"] = minutes
    grid["since_ts"] = now - minutes * 60.0
    return web.json_response(grid)


# ----------------------------------------------------------------------------- scenarios


@routes.post("/api/new_scenario")
async def new_scenario(request: web.Request) -> web.Response:
    """Seed 000's scenario JSON or the tab's ``{customer_id, step_s, pins}``; 202 when published."""
    if request.content_length is not None and request.content_length > MAX_SCENARIO_BODY_BYTES:
        raise bad_request("body", f"at most {MAX_SCENARIO_BODY_BYTES} bytes")
    raw = await request.read()
    if len(raw) > MAX_SCENARIO_BODY_BYTES:
        raise bad_request("body", f"at most {MAX_SCENARIO_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request("body", "the body must be JSON") from None
    store = request.app[STORE_CONFIG]
    try:
        customer_id, pins, step_s, has_enter, has_exit = parse_request(body, store.plan)
        if customer_id not in request.app[CUSTOMERS]:
            raise ScenarioError("customer_id", f"unknown customer {customer_id!r}; see GET /api/customers")
        scenario = build(customer_id, pins, step_s, store.plan, store.entrance, store.exit,
                         has_enter=has_enter, has_exit=has_exit)
    except ScenarioError as exc:
        raise bad_request(exc.field, exc.message) from None
    topic = scenario_topic(store.id)
    request.app[MQTT].publish(topic, encode_scenario(scenario), qos=1)
    log.info("event=scenario_published customer=%s points=%d step_s=%g", customer_id, len(scenario.path), step_s)
    return web.json_response({
        "customer_id": customer_id, "topic": topic, "step_s": step_s, "points": len(scenario.path),
        "duration_s": duration_s(scenario),
        "path": [{"type": s.type, "x": s.x, "y": s.y} for s in scenario.path],
    }, status=202)


# ----------------------------------------------------------------------------- OpenAPI

def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_400 = _json(ERROR_SCHEMA, "invalid: {error, status, param}")
_ERROR_401 = _json(ERROR_SCHEMA, "an API token is configured and was not presented")
_POINT = {"type": "object", "required": ["x", "y"], "properties": {"x": {"type": "number"}, "y": {"type": "number"}}}
_STORE = {
    "type": "object",
    "required": ["id", "name", "width_px", "height_px", "metres_per_px", "zones", "entrance", "exit",
                 "background_url", "sensors", "agents", "endpoints"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "timezone": {"type": "string"},
        "width_px": {"type": "integer"}, "height_px": {"type": "integer"}, "metres_per_px": {"type": "number"},
        "zones": {"type": "array", "items": {
            "type": "object", "required": ["name", "category", "department", "polygon"],
            "properties": {"name": {"type": "string"}, "category": {"type": "string"},
                           "department": {"type": "string"},
                           "polygon": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}},
        "entrance": _POINT, "exit": _POINT,
        "background_url": {"type": ["string", "null"]},
        "sensors": {"type": "array", "items": {
            "type": "object", "required": ["agent", "kind", "id", "x", "y"],
            "properties": {"agent": {"type": "string"}, "kind": {"type": "string", "enum": ["sniffer", "pir", "door"]},
                           "id": {"type": "string"}, "zone": {"type": "string"},
                           "x": {"type": "number"}, "y": {"type": "number"}}}},
        "agents": {"type": "array", "items": {"type": "string"}},
        "device_errors": {"type": "array", "items": {"type": "object"}},
        "endpoints": {"type": "object", "additionalProperties": {"type": "boolean"}},
    },
}
_HEATMAP = {
    "type": "object", "required": ["cell_px", "cols", "rows", "counts", "max", "total", "minutes", "since_ts"],
    "properties": {"cell_px": {"type": "integer"}, "cols": {"type": "integer"}, "rows": {"type": "integer"},
                   "counts": {"type": "array", "items": {"type": "integer", "minimum": 0},
                              "description": "row-major, cols x rows"},
                   "max": {"type": "integer"}, "total": {"type": "integer"}, "minutes": {"type": "integer"},
                   "since_ts": {"type": "number"}},
}
_SCENARIO_FORM = {
    "type": "object", "required": ["customer_id", "pins"],
    "properties": {"customer_id": {"type": ["string", "integer"]},
                   "step_s": {"type": "number", "minimum": 1, "maximum": 15, "default": 5},
                   "pins": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
                       "type": "object", "required": ["x", "y"],
                       "properties": {"type": {"type": "string", "enum": ["movement", "focus"]},
                                      "x": {"type": "number"}, "y": {"type": "number"}}}}},
}
_SCENARIO_SEED = {
    "type": "object", "required": ["customer", "path"], "description": "the retail demo's scenario JSON",
    "properties": {"customer": {"type": "object", "required": ["customer_id"],
                                "properties": {"customer_id": {"type": ["string", "integer"]}}},
                   "step_s": {"type": "number", "minimum": 1, "maximum": 15},
                   "path": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
                       "type": "object", "required": ["location"],
                       "properties": {"type": {"type": "string", "description": "ENTER, MOVE, FOCUS or EXIT"},
                                      "location": _POINT, "timestamp": {"type": "number"}}}}},
}
_SCENARIO_ACCEPTED = {
    "type": "object", "required": ["customer_id", "topic", "step_s", "points", "duration_s", "path"],
    "properties": {"customer_id": {"type": "string"}, "topic": {"type": "string"}, "step_s": {"type": "number"},
                   "points": {"type": "integer", "maximum": 100}, "duration_s": {"type": "number"},
                   "path": {"type": "array", "items": {
                       "type": "object", "required": ["type", "x", "y"],
                       "properties": {"type": {"type": "string"}, "x": {"type": "number"}, "y": {"type": "number"}}}}},
}
_INT_PARAM = {"in": "query", "required": False}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/store": {"get": {
        "summary": "the plan: size, scale, zones, entrance/exit, every device file's sensors, background picture",
        "tags": ["map"], "responses": {"200": _json(_STORE), "401": _ERROR_401}}},
    "/api/heatmap": {"get": {
        "summary": "sightings of the last N minutes counted per grid cell (the map's heat layer)",
        "tags": ["map"],
        "parameters": [
            {**_INT_PARAM, "name": "minutes", "description": "1-1440 (default 15)",
             "schema": {"type": "integer", "minimum": 1, "maximum": HEATMAP_MINUTES_MAX}},
            {**_INT_PARAM, "name": "cell_px", "description": "cell size in plan px, 10-400 (default 40)",
             "schema": {"type": "integer", "minimum": 10, "maximum": 400}}],
        "responses": {"200": _json(_HEATMAP), "400": _ERROR_400, "401": _ERROR_401}}},
    "/api/new_scenario": {"post": {
        "summary": "play a walk for a customer through the mock agents: the scenario tab's form or the retail "
                   "demo's scenario JSON; framed by entrance and exit, focus pins linger 5 points, points at most "
                   "300 px apart, at most 100",
        "tags": ["map"],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"oneOf": [_SCENARIO_FORM, _SCENARIO_SEED]}}}},
        "responses": {"202": _json(_SCENARIO_ACCEPTED, "published on the store's scenario topic"),
                      "400": _ERROR_400, "401": _ERROR_401,
                      "403": _json(ERROR_SCHEMA,
                                   "no API token configured and the server listens beyond localhost")}}},
    **login.OPENAPI_PATHS,
}
