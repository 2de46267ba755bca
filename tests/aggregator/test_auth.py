"""Auth: a configured token guards everything but /health; without one, writes need localhost."""

from __future__ import annotations

from dataclasses import replace

import aiohttp
import pytest

from aggregator.app import create_app
from aggregator.settings import Settings


@pytest.fixture
def offline(settings: Settings) -> Settings:
    return replace(settings, mqtt_enabled=False)


async def test_token_required_everywhere_but_health(aiohttp_client, offline: Settings) -> None:
    client = await aiohttp_client(create_app(replace(offline, api_token="s3cret-token")))
    assert (await client.get("/health")).status == 200
    for path in ("/api/positions", "/metrics", "/api/openapi.json", "/api/agents"):
        resp = await client.get(path)
        assert resp.status == 401, path
        assert (await resp.json())["status"] == 401
        assert "Bearer" in resp.headers["WWW-Authenticate"]
    assert (await client.get("/api/positions", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get("/api/positions", headers={"Authorization": "Bearer s3cret-token"})).status == 200
    assert (await client.get("/api/positions?token=s3cret-token")).status == 200
    resp = await client.post("/api/customers/1/link", json={"device": "d-1"})
    assert resp.status == 401
    resp = await client.post("/api/customers/1/link", json={"device": "d-1"},
                             headers={"Authorization": "Bearer s3cret-token"})
    assert resp.status == 201
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/ws/movement")
    ws = await client.ws_connect("/ws/movement?token=s3cret-token")
    await ws.close()


async def test_writes_without_token_only_on_localhost(aiohttp_client, offline: Settings) -> None:
    public = await aiohttp_client(create_app(replace(offline, http_host="0.0.0.0")))
    resp = await public.post("/api/customers/1/link", json={"device": "d-1"})
    assert resp.status == 403
    assert (await public.get("/api/positions")).status == 200  # reads stay open without a token
    local = await aiohttp_client(create_app(replace(offline, http_host="127.0.0.1", db_path=offline.db_path.with_name(
        "local.db"))))
    assert (await local.post("/api/customers/1/link", json={"device": "d-1"})).status == 201


async def test_bad_requests_are_json_400(aiohttp_client, offline: Settings) -> None:
    client = await aiohttp_client(create_app(offline))
    for body in (b"not json", b"[]", b'{"device": 5}', b'{"device": ""}'):
        resp = await client.post("/api/customers/1/link", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 400, body
        assert "error" in await resp.json()
    for query in ("limit=5000", "offset=-1", "limit=abc", "kind=teleport", "since=nan"):
        resp = await client.get(f"/api/events?{query}")
        assert resp.status == 400, query
    resp = await client.delete("/api/positions")
    assert resp.status == 405 and (await resp.json())["status"] == 405
