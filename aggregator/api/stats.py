"""Footfall statistics over HTTP (``/api/stats/*``, JSON or ``?format=csv``) and the dashboard page.

Handlers only parse and validate the query string, then read the roll-ups through the
:class:`AnalyticsService` worker (which first folds in anything stored since the last update).
Bad parameters are 400 with a JSON body naming the parameter.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from aggregator.analytics import queries
from aggregator.analytics.definitions import AnalyticsParams, zone_gap_from_env
from aggregator.analytics.service import AnalyticsService
from aggregator.api.core import int_param
from aggregator.http_errors import ERROR_SCHEMA, bad_request, not_found

ANALYTICS = web.AppKey("analytics", AnalyticsService)
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DASHBOARD_FILES = {"dashboard.js": "application/javascript", "dashboard.css": "text/css"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_PAGE = 1000
CSV_PAGE = 5000  # visitors per read when streaming the whole day as CSV

routes = web.RouteTableDef()

_DATE_MIN, _DATE_MAX = date(1970, 1, 1), date(9000, 12, 31)


def _date(request: web.Request, name: str, default: date | None = None) -> date:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise bad_request(name, f"{name} is required (YYYY-MM-DD)")
        return default
    if not _DATE.match(raw):
        raise bad_request(name, f"{name} must be a date YYYY-MM-DD, got {raw[:40]!r}")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise bad_request(name, f"{name} is not a real date: {raw!r}") from None
    if not _DATE_MIN <= value <= _DATE_MAX:  # date arithmetic near year 1 or 9999 would overflow (a 500)
        raise bad_request(name, f"{name} must be between {_DATE_MIN} and {_DATE_MAX}, got {raw!r}")
    return value


def _format(request: web.Request) -> str:
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise bad_request("format", f"format must be json or csv, got {fmt[:20]!r}")
    return fmt


def _today(request: web.Request) -> date:
    return datetime.now(ZoneInfo(request.app[ANALYTICS].params.timezone)).date()


def _csv_text(rows: list[dict[str, Any]], *, header: bool = True) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        if header:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: ";".join(v) if isinstance(v, list) else ("" if v is None else v)
                             for k, v in row.items()})
    return out.getvalue()


async def _visitors_csv_stream(request: web.Request, day: date) -> web.StreamResponse:
    """Every visitor of the day as CSV, no row limit, written a page at a time (memory bounded by a page)."""
    resp = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                       "Content-Disposition": f'attachment; filename="visitors-{day}.csv"'})
    await resp.prepare(request)
    offset = 0
    while True:
        total, rows = await request.app[ANALYTICS].read(
            lambda conn, d, o=offset: queries.visitors(conn, d, limit=CSV_PAGE, offset=o), day)
        await resp.write(_csv_text(rows, header=offset == 0).encode("utf-8"))
        offset += len(rows)
        if not rows or offset >= total:
            break
    await resp.write_eof()
    return resp


def _csv(rows: list[dict[str, Any]], name: str) -> web.Response:
    return web.Response(text=_csv_text(rows), content_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


async def _one_day(request: web.Request, name: str, fn: Callable[..., list[dict[str, Any]]]) -> web.Response:
    fmt = _format(request)
    day = _date(request, "date", _today(request))
    rows = await request.app[ANALYTICS].read(fn, day)
    if fmt == "csv":
        return _csv(rows, f"{name}-{day}")
    return web.json_response({"date": day.isoformat(), "rows": rows})


@routes.get("/api/stats/daily")
async def stats_daily(request: web.Request) -> web.Response:
    fmt = _format(request)
    last = _date(request, "to", _today(request))
    first = _date(request, "from", last - timedelta(days=29))
    if first > last:
        raise bad_request("from", f"from ({first}) is after to ({last})")
    if (last - first).days >= queries.MAX_RANGE_DAYS:
        raise bad_request("from", f"at most {queries.MAX_RANGE_DAYS} days per request")
    rows = await request.app[ANALYTICS].read(queries.daily, first, last)
    if fmt == "csv":
        return _csv(rows, f"daily-{first}-{last}")
    return web.json_response({"from": first.isoformat(), "to": last.isoformat(), "rows": rows})


@routes.get("/api/stats/zones")
async def stats_zones(request: web.Request) -> web.Response:
    return await _one_day(request, "zones", queries.zones)


@routes.get("/api/stats/hourly")
async def stats_hourly(request: web.Request) -> web.Response:
    tz = request.app[ANALYTICS].params.timezone
    return await _one_day(request, "hourly", functools.partial(queries.hourly, timezone=tz))


@routes.get("/api/stats/dwell")
async def stats_dwell(request: web.Request) -> web.Response:
    return await _one_day(request, "dwell", queries.dwell)


@routes.get("/api/stats/loyalty")
async def stats_loyalty(request: web.Request) -> web.Response:
    return await _one_day(request, "loyalty", queries.loyalty)


@routes.get("/api/stats/visitors")
async def stats_visitors(request: web.Request) -> web.Response:
    fmt = _format(request)
    day = _date(request, "date", _today(request))
    if fmt == "csv" and "limit" not in request.query and "offset" not in request.query:
        return await _visitors_csv_stream(request, day)  # the dashboard's download: every visitor
    limit = int_param(request, "limit", 100, 1, MAX_PAGE)
    offset = int_param(request, "offset", 0, 0, 10**9)
    total, rows = await request.app[ANALYTICS].read(
        lambda conn, d: queries.visitors(conn, d, limit=limit, offset=offset), day)
    if fmt == "csv":
        return _csv(rows, f"visitors-{day}-{offset}")
    next_offset = offset + len(rows) if offset + len(rows) < total else None
    return web.json_response({"date": day.isoformat(), "total": total, "limit": limit, "offset": offset,
                              "next_offset": next_offset, "rows": rows})


@routes.get("/api/stats/range")
async def stats_range(request: web.Request) -> web.Response:
    """First and last day with data, and today in the store's time zone (the dashboard's defaults)."""
    first, last = await request.app[ANALYTICS].read(queries.days_with_data)
    return web.json_response({"first": first, "last": last, "today": _today(request).isoformat(),
                              "timezone": request.app[ANALYTICS].params.timezone})


@routes.get("/dashboard")
async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "dashboard.html", headers={"Content-Type": "text/html; charset=utf-8"})


@routes.get("/dashboard/{name}")
async def dashboard_asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in DASHBOARD_FILES:
        raise not_found(f"no dashboard file {name[:40]!r}")
    return web.FileResponse(WEB_DIR / name, headers={"Content-Type": DASHBOARD_FILES[name]})


def install(app: web.Application, db_path: str | Path, params: AnalyticsParams, bus: Any = None) -> None:
    """Attach the analytics service to ``app``: background updates for the app's lifetime."""
    service = AnalyticsService(db_path, params)
    app[ANALYTICS] = service

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await service.start(bus)
        yield
        await service.stop()

    app.cleanup_ctx.append(lifetime)


def setup(app: web.Application) -> None:
    """ROUTE_MODULES hook: the database and time zone come from the aggregator's app keys."""
    from aggregator.appkeys import BUS, DB_PATH, STORE_CONFIG

    params = AnalyticsParams(timezone=app[STORE_CONFIG].timezone, zone_gap_s=zone_gap_from_env())
    install(app, app[DB_PATH], params, app.get(BUS))


def _op(summary: str, params: list[dict[str, Any]], csv_too: bool = True) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if csv_too:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {"get": {
        "summary": summary, "tags": ["analytics"], "parameters": params,
        "responses": {"200": {"description": "the rows (docs/ANALYTICS.md defines every field)", "content": content},
                      "400": {"description": "a bad parameter: {error, status, param}",
                              "content": {"application/json": {"schema": ERROR_SCHEMA}}}}}}


def _param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


_DATE_P = _param("date", "local day YYYY-MM-DD (default today in the store's time zone)",
                 {"type": "string", "format": "date"})
_FORMAT_P = _param("format", "json (default) or csv", {"type": "string", "enum": ["json", "csv"]})
OPENAPI_PATHS: dict[str, Any] = {
    "/api/stats/daily": _op("per day: visitors, new, returning, busiest hour, passers-by, capture rate, doors", [
        _param("from", "first day YYYY-MM-DD (default to - 29 days)", {"type": "string", "format": "date"}),
        _param("to", "last day YYYY-MM-DD (default today); at most 366 days", {"type": "string", "format": "date"}),
        _FORMAT_P]),
    "/api/stats/zones": _op("zones by unique visitors that day, ranked (top5 = rank <= 5)", [_DATE_P, _FORMAT_P]),
    "/api/stats/hourly": _op("per local hour: visitors, door in/out, occupancy (door count), people (estimate: "
                             "mean linked identities present)", [_DATE_P, _FORMAT_P]),
    "/api/stats/visitors": _op("that day's visitors: favourite zone, zones entered more than once (paged)", [
        _DATE_P, _param("limit", "page size 1-1000 (default 100; CSV without limit and offset: every visitor)",
                        {"type": "integer", "minimum": 1, "maximum": 1000}),
        _param("offset", "rows to skip (default 0)", {"type": "integer", "minimum": 0}), _FORMAT_P]),
    "/api/stats/dwell": _op("visits by duration bucket", [_DATE_P, _FORMAT_P]),
    "/api/stats/loyalty": _op("first-time, returning within 7 days, occasional visitors, passers-by",
                              [_DATE_P, _FORMAT_P]),
    "/api/stats/range": _op("first and last day with data, today, time zone", [], csv_too=False),
}
