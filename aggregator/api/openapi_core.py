"""OpenAPI 3 description of the core routes (checked by tests against the router and real responses)."""

from __future__ import annotations

from typing import Any

from aggregator.http_errors import ERROR_SCHEMA

_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_401 = {"description": "an API token is configured and was not presented",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


LIMIT = {"name": "limit", "in": "query", "required": False, "description": "page size (default 100)",
         "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}
OFFSET = {"name": "offset", "in": "query", "required": False, "description": "items to skip",
          "schema": {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0}}
ID = {"name": "id", "in": "path", "required": True, "description": "loyalty customer id, or a hashed device id",
      "schema": {"type": "string", "minLength": 1, "maxLength": 128}}
_TS = {"type": "number", "minimum": -1e11, "maximum": 1e11}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "total", "limit", "offset"],
            "properties": {"items": {"type": "array", "items": item}, "total": {"type": "integer"},
                           "limit": {"type": "integer"}, "offset": {"type": "integer"}}}


SCHEMAS: dict[str, Any] = {
    "Alert": {"type": "object",
              "required": ["rule", "kind", "state", "store", "subject", "value", "limit", "since", "ts"],
              "properties": {"rule": {"type": "string"},
                             "kind": {"type": "string", "enum": ["occupancy", "agent-offline", "dead-letters"]},
                             "state": {"type": "string", "enum": ["firing", "recovered"]},
                             "store": {"type": "string"}, "subject": {"type": "string"}, "value": {"type": "number"},
                             "limit": {"type": "number"}, "since": {"type": "number"}, "ts": {"type": "number"}}},
    "Error": ERROR_SCHEMA,
    "Health": {"type": "object", "required": ["status", "db_writable", "ingest_lag_s", "queue_depth"],
               "properties": {"status": {"type": "string", "enum": ["ok", "degraded"]},
                              "broker_connected": {"type": ["boolean", "null"]},
                              "db_writable": {"type": "boolean"}, "ingest_lag_s": {"type": "number"},
                              "queue_depth": {"type": "integer"}, "uptime_s": {"type": "number"},
                              "store": {"type": "string"}}},
    "Shopper": {"type": "object", "required": ["visitor", "id", "device", "visit_id", "ts", "state"],
                "properties": {"visitor": {"type": "string"}, "id": {"type": "string"},
                               "device": {"type": "string"}, "customer_id": {"type": ["string", "null"]},
                               "visit_id": {"type": "string"}, "entered_ts": {"type": "number"},
                               "ts": {"type": "number"}, "x": {"type": ["number", "null"]},
                               "y": {"type": ["number", "null"]},
                               "accuracy_m": {"type": ["number", "null"]},
                               "zone": {"type": ["string", "null"]}, "dep": {"type": ["string", "null"]},
                               "category": {"type": ["string", "null"]},
                               "state": {"type": "string", "enum": ["moving", "browsing", "offered"]}}},
    "Customer": {"type": "object", "description": "the retail demo's customer record plus its live state",
                 "required": ["customer_id", "state"],
                 "properties": {"customer_id": {}, "name": {"type": "string"},
                                "state": {"anyOf": [_ref("Shopper"), {"type": "null"}]}},
                 "additionalProperties": True},
    "Sighting": {"type": "object", "required": ["ts", "x", "y", "accuracy_m", "zone", "visit_id"],
                 "properties": {"ts": {"type": "number"}, "x": {"type": "number"}, "y": {"type": "number"},
                                "accuracy_m": {"type": "number"}, "zone": {"type": ["string", "null"]},
                                "visit_id": {"type": "string"}}},
    "Agent": {"type": "object", "required": ["agent", "state", "messages"],
              "properties": {"agent": {"type": "string"},
                             "state": {"type": "string", "enum": ["online", "offline", "unknown"]},
                             "last_seen_ts": {"type": ["number", "null"]},
                             "status_ts": {"type": ["number", "null"]},
                             "messages": {"type": "integer"},
                             "health": {"type": ["object", "null"], "additionalProperties": True}}},
    "PeopleEstimate": {"type": "object", "required": ["people", "estimate", "sigma"],
                       "properties": {"people": {"type": "integer", "minimum": 0,
                                                 "description": "the estimate rounded to whole people"},
                                      "estimate": {"type": "number", "minimum": 0},
                                      "sigma": {"type": "number", "minimum": 0,
                                                "description": "1-sigma uncertainty, persons"}}},
    "Occupancy": {"type": "object", "required": ["ts", "people", "estimate", "sigma", "zones", "evidence"],
                  "properties": {"ts": {"type": "number"}, "people": {"type": "integer", "minimum": 0},
                                 "estimate": {"type": "number", "minimum": 0},
                                 "sigma": {"type": "number", "minimum": 0},
                                 "zones": {"type": "object", "description": "every zone of the plan, by name",
                                           "additionalProperties": _ref("PeopleEstimate")},
                                 "evidence": {"type": "object", "description": "what the estimate rests on "
                                              "(devices, linked, fixtures, neighbours, factor, door_in, door_out, "
                                              "pir_active, ...): docs/OCCUPANCY.md",
                                              "additionalProperties": {"type": "number"}}}},
    "CustomerEvent": {"type": "object", "required": ["id", "ts", "kind", "visitor"],
                      "properties": {"id": {"type": "integer"}, "ts": {"type": "number"},
                                     "kind": {"type": "string", "enum": ["enter", "move", "exit", "browsing"]},
                                     "visitor": {"type": "string"}, "x": {"type": ["integer", "null"]},
                                     "y": {"type": ["integer", "null"]},
                                     "dep": {"type": ["string", "null"]}}},
}

OPENAPI_PATHS: dict[str, Any] = {
    "/health": {"get": {
        "summary": "Liveness and readiness: broker connected, database writable, ingest lag",
        "security": [],
        "responses": {"200": _json(_ref("Health"), "healthy"), "503": _json(_ref("Health"), "degraded")}}},
    "/metrics": {"get": {
        "summary": "Prometheus metrics (text exposition format)",
        "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "401": _401}}},
    "/api/customers": {"get": {
        "summary": "The retail demo's customers list with each customer's live state",
        "parameters": [LIMIT, OFFSET],
        "responses": {"200": _json(_page(_ref("Customer"))), "400": _ERR, "401": _401}}},
    "/api/customers/{id}/track": {"get": {
        "summary": "Fused positions of one visitor, oldest first",
        "parameters": [ID, LIMIT, OFFSET,
                       {"name": "since", "in": "query", "required": False, "description": "epoch seconds",
                        "schema": _TS},
                       {"name": "until", "in": "query", "required": False, "description": "epoch seconds",
                        "schema": _TS}],
        "responses": {"200": _json({"type": "object", "required": ["id", "items", "limit", "offset"],
                                    "properties": {"id": {"type": "string"},
                                                   "items": {"type": "array", "items": _ref("Sighting")},
                                                   "limit": {"type": "integer"}, "offset": {"type": "integer"}}}),
                      "400": _ERR, "401": _401, "404": _ERR}}},
    "/api/customers/{id}/link": {"post": {
        "summary": "Link a hashed device id to this loyalty customer",
        "parameters": [ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["device"],
            "properties": {"device": {"type": "string", "minLength": 1, "maxLength": 128}}}}}},
        "responses": {"201": _json({"type": "object", "required": ["device", "customer_id"],
                                    "properties": {"device": {"type": "string"},
                                                   "customer_id": {"type": "string"}}}, "linked"),
                      "400": _ERR, "401": _401,
                      "403": {"description": "no token configured and the server listens beyond localhost",
                              "content": {"application/json": {"schema": _ref("Error")}}}}}},
    "/api/positions": {"get": {
        "summary": "Everyone in the store now, with the latest fused position",
        "parameters": [LIMIT, OFFSET],
        "responses": {"200": _json(_page(_ref("Shopper"))), "400": _ERR, "401": _401}}},
    "/api/zones/occupancy": {"get": {
        "summary": "Shoppers per zone now",
        "responses": {"200": _json({"type": "object", "required": ["ts", "zones", "outside_zones", "total"],
                                    "properties": {
                                        "ts": {"type": "number"},
                                        "zones": {"type": "array", "items": {
                                            "type": "object", "required": ["zone", "count"],
                                            "properties": {"zone": {"type": "string"}, "dep": {"type": "string"},
                                                           "category": {"type": "string"},
                                                           "count": {"type": "integer"}}}},
                                        "outside_zones": {"type": "integer"}, "total": {"type": "integer"}}}),
                      "401": _401}}},
    "/api/occupancy": {"get": {
        "summary": "People in the store now and per zone: estimate, uncertainty and the evidence",
        "responses": {"200": _json(_ref("Occupancy")), "401": _401}}},
    "/api/occupancy/head-count": {"post": {
        "summary": "People counted by hand now: the store's people-per-device factor from the counts so far",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["people"],
            "properties": {"people": {"type": "number", "minimum": 0, "maximum": 100000}}}}}},
        "responses": {"201": _json({"type": "object", "required": ["people", "devices", "factor", "sigma", "used"],
                                    "properties": {"people": {"type": "number"}, "devices": {"type": "number"},
                                                   "factor": {"type": "number"}, "sigma": {"type": "number"},
                                                   "used": {"type": "integer"}, "uncertain": {"type": "boolean"},
                                                   "store_toml": {"type": "string"}}}, "counted"),
                      "400": _ERR, "401": _401,
                      "403": {"description": "no token configured and the server listens beyond localhost",
                              "content": {"application/json": {"schema": _ref("Error")}}}}}},
    "/api/agents": {"get": {
        "summary": "Availability and last health report of each agent",
        "parameters": [LIMIT, OFFSET],
        "responses": {"200": _json(_page(_ref("Agent"))), "400": _ERR, "401": _401}}},
    "/api/alerts": {"get": {
        "summary": "Webhook alerts of the store file's rules: recent (newest first), firing, posts pending",
        "parameters": [LIMIT],
        "responses": {"200": _json({
            "type": "object", "required": ["items", "firing", "pending_posts", "posted", "failed_attempts"],
            "properties": {"items": {"type": "array", "items": _ref("Alert")},
                           "firing": {"type": "array", "items": _ref("Alert")},
                           "pending_posts": {"type": "integer"}, "posted": {"type": "integer"},
                           "failed_attempts": {"type": "integer"}, "dropped": {"type": "integer"}}}),
                      "400": _ERR, "401": _401}}},
    "/api/events": {"get": {
        "summary": "Customer-tier events published: newest first, or oldest first (order=asc, after a cursor)",
        "parameters": [LIMIT, OFFSET,
                       {"name": "kind", "in": "query", "required": False,
                        "schema": {"type": "string", "enum": ["enter", "move", "exit", "browsing"]}},
                       {"name": "visitor", "in": "query", "required": False,
                        "schema": {"type": "string", "maxLength": 128}},
                       {"name": "after_id", "in": "query", "required": False,
                        "description": "cursor: only events with a larger id, oldest first",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**62}},
                       {"name": "since", "in": "query", "required": False, "description": "epoch seconds",
                        "schema": _TS},
                       {"name": "until", "in": "query", "required": False,
                        "description": "before this time, epoch seconds", "schema": _TS},
                       {"name": "order", "in": "query", "required": False,
                        "description": "asc: oldest first; desc: newest first (the default without after_id)",
                        "schema": {"type": "string", "enum": ["asc", "desc"]}}],
        "responses": {"200": _json({"type": "object",
                                    "required": ["items", "total", "limit", "offset", "next_after_id"],
                                    "properties": {"items": {"type": "array", "items": _ref("CustomerEvent")},
                                                   "total": {"type": "integer"},
                                                   "limit": {"type": "integer"}, "offset": {"type": "integer"},
                                                   "next_after_id": {"type": "integer"}}}),
                      "400": _ERR, "401": _401}}},
    "/api/openapi.json": {"get": {
        "summary": "This description",
        "responses": {"200": _json({"type": "object"}), "401": _401}}},
    "/ws/movement": {"get": {
        "summary": "WebSocket: every frame is a JSON array of shopper events (enter/move/exit/browsing/...)",
        "responses": {"101": {"description": "switching protocols"},
                      "400": {"description": "not a WebSocket handshake"}, "401": _401}}},
    "/ws/coupons": {"get": {
        "summary": "WebSocket: one prediction object (the retail demo's shape) per frame as offers fire",
        "responses": {"101": {"description": "switching protocols"},
                      "400": {"description": "not a WebSocket handshake"}, "401": _401}}},
}
