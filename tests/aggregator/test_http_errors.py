"""aggregator/http_errors.py: every 4xx of every area answers the one JSON error shape (docs/API.md)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aggregator.app import create_app
from aggregator.chain.serve import create_chain_app
from aggregator.settings import Settings

TOKEN = "s3cret-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}

# (method, path, request options, status, the param to blame or None): one or more per area
BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int, str | None]] = [
    ("GET", "/api/positions?limit=0", {}, 400, "limit"),
    ("GET", "/api/events?kind=teleport", {}, 400, "kind"),
    ("GET", "/api/events?since=nan", {}, 400, "since"),
    ("POST", "/api/customers/1/link", {"data": b"not json", "headers": JSON}, 400, "body"),
    ("POST", "/api/customers/1/link", {"json": {"device": ""}}, 400, "device"),
    ("POST", "/api/customers/1/link", {"body_bytes": 2 * 1024 * 1024, "headers": JSON}, 413, None),
    ("GET", "/api/customers/nobody-at-all/track", {}, 404, None),
    ("GET", "/api/visits?visitor=" + "v" * 300, {}, 400, "visitor"),
    ("GET", "/api/stats/daily?to=yesterday", {}, 400, "to"),
    ("GET", "/api/stats/zones?date=2026-02-30", {}, 400, "date"),
    ("GET", "/api/stats/dwell?date=2026-03-11&format=xml", {}, 400, "format"),
    ("GET", "/api/offers?customer_id=%20", {}, 400, "customer_id"),
    ("GET", "/api/offers/log?limit=abc", {}, 400, "limit"),
    ("POST", "/api/new_scenario", {"data": b"{", "headers": JSON}, 400, "body"),
    ("POST", "/api/new_scenario", {"json": {"customer_id": "no-such-customer", "pins": []}}, 400, None),
    ("GET", "/static/nope.js", {}, 404, None),
    ("GET", "/dashboard/nope.js", {}, 404, None),
    ("GET", "/api/nope", {}, 404, None),
    ("DELETE", "/api/positions", {}, 405, None),
]


async def assert_error_shape(resp: aiohttp.ClientResponse, status: int, param: str | None = None) -> dict[str, Any]:
    assert resp.status == status, (resp.method, resp.url.path, resp.status, await resp.text())
    assert resp.content_type == "application/json", (resp.url.path, resp.content_type)
    body = await resp.json()
    assert isinstance(body, dict) and set(body) <= {"error", "status", "param"}, body
    assert isinstance(body["error"], str) and body["error"] and body["status"] == status, body
    if param is not None:
        assert body["param"] == param, body
    return body


@pytest.fixture
def offline(settings: Settings) -> Settings:
    return replace(settings, mqtt_enabled=False)


async def test_every_area_answers_bad_requests_in_one_shape(aiohttp_client, offline: Settings) -> None:
    client = await aiohttp_client(create_app(replace(offline, api_token=TOKEN)))
    for method, path, options, status, param in BAD_REQUESTS:
        options = {**options, "headers": {**BEARER, **options.get("headers", {})}}
        if "body_bytes" in options:  # past client_max_size (1 MiB); a stream, as aiohttp wants for a big body
            options["data"] = io.BytesIO(b"x" * options.pop("body_bytes"))
        resp = await client.request(method, path, **options)
        await assert_error_shape(resp, status, param)
        if status == 405:
            assert "GET" in resp.headers["Allow"]


async def test_refusals_of_the_auth_middleware_have_the_shape(aiohttp_client, offline: Settings) -> None:
    guarded = await aiohttp_client(create_app(replace(offline, api_token=TOKEN)))
    resp = await guarded.get("/api/positions")
    await assert_error_shape(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    await assert_error_shape(await guarded.get("/api/positions", headers={"Authorization": "Bearer wrong"}), 401)
    # no token and listening on every interface: writes are refused
    public = await aiohttp_client(create_app(replace(offline, http_host="0.0.0.0")))
    await assert_error_shape(await public.post("/api/customers/1/link", json={"device": "d-1"}), 403)


async def test_the_chain_server_answers_the_same_shape(aiohttp_client, tmp_path: Path) -> None:
    client = await aiohttp_client(create_chain_app(tmp_path))
    await assert_error_shape(await client.get("/api/chain/daily", params={"to": "yesterday"}), 400, "to")
    await assert_error_shape(await client.get("/api/chain/nope"), 404)
    await assert_error_shape(await client.post("/api/chain/daily"), 405)
