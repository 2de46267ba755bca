"""Raw visits over HTTP (``/api/visits``), a page at a time: the rows ``floorwalker-aggregator export`` writes.

The same columns as the export (aggregator/export.py, docs/DATA.md), oldest first by default, with
``total`` so a client knows how many pages to fetch. Read from SQLite in an executor thread.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from aggregator.api.core import ORDERS, order_param, page, query, time_window
from aggregator.api.openapi_core import LIMIT, OFFSET
from aggregator.export import DATASETS
from aggregator.http_errors import bad_request

routes = web.RouteTableDef()

VISITS = DATASETS["visits"]
_TYPES = {"text": "string", "real": "number", "integer": "integer", "bool": "boolean"}
VISITOR_MAX = 128  # as /api/events


@routes.get("/api/visits")
async def visits(request: web.Request) -> web.Response:
    """Store visits by start time, a page at a time, with the total for the same filter."""
    limit, offset = page(request)
    order = order_param(request, "asc")
    where, params = time_window(request, "start_ts")
    visitor = request.query.get("visitor", "")
    if len(visitor) > VISITOR_MAX:
        raise bad_request("visitor", f"visitor must be at most {VISITOR_MAX} characters")
    if visitor:
        where.append("visitor = ?")
        params.append(visitor)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    names = ", ".join(c.name for c in VISITS.columns)
    direction = "ASC" if order == "asc" else "DESC"
    rows = await query(request, f"SELECT {names} FROM visits{clause} ORDER BY start_ts {direction}, "
                                f"visit_id {direction} LIMIT ? OFFSET ?", (*params, limit, offset))
    total = (await query(request, f"SELECT COUNT(*) AS n FROM visits{clause}", tuple(params)))[0]["n"]
    for row in rows:
        row["passerby"] = bool(row["passerby"])
    next_offset = offset + len(rows) if offset + len(rows) < total else None
    return web.json_response({"items": rows, "total": total, "limit": limit, "offset": offset,
                              "next_offset": next_offset})


_SINCE = {"name": "since", "in": "query", "required": False, "description": "from this time, epoch seconds",
          "schema": {"type": "number", "minimum": -1e11, "maximum": 1e11}}
_UNTIL = {"name": "until", "in": "query", "required": False, "description": "before this time, epoch seconds",
          "schema": {"type": "number", "minimum": -1e11, "maximum": 1e11}}
ORDER = {"name": "order", "in": "query", "required": False, "description": "asc: oldest first; desc: newest first",
         "schema": {"type": "string", "enum": list(ORDERS)}}
VISIT_SCHEMA = {
    "type": "object", "required": [c.name for c in VISITS.columns],
    "properties": {c.name: {"type": _TYPES[c.kind] if c.name in ("visit_id", "passerby") else [_TYPES[c.kind], "null"],
                            "description": c.doc} for c in VISITS.columns}}
_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/visits": {"get": {
        "summary": "Store visits by start time (oldest first unless order=desc), paged, with the total",
        "parameters": [LIMIT, OFFSET, _SINCE, _UNTIL, ORDER,
                       {"name": "visitor", "in": "query", "required": False,
                        "schema": {"type": "string", "maxLength": 128}}],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "required": ["items", "total", "limit", "offset", "next_offset"],
                "properties": {"items": {"type": "array", "items": VISIT_SCHEMA},
                               "total": {"type": "integer"}, "limit": {"type": "integer"},
                               "offset": {"type": "integer"}, "next_offset": {"type": ["integer", "null"]}}}}}},
            "400": _ERR, "401": _ERR}}},
}
