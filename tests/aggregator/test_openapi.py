"""The OpenAPI description matches the router and the real responses of the core routes."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time

import jsonschema_rs
import pytest

from aggregator.api import core, ws
from aggregator.app import create_app
from aggregator.appkeys import INGEST, LINK
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from tests.aggregator import agents
from tests.aggregator.conftest import wait_until
from tests.mqtt_helpers import publish

pytestmark = pytest.mark.broker


def _routes(module) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(r.method.lower(), r.path) for r in module.routes}


def test_every_core_route_is_described_and_nothing_else() -> None:
    described = {(method, path) for path, item in core.OPENAPI_PATHS.items() for method in item}
    assert _routes(core) | _routes(ws) == described


async def test_real_responses_match_the_schemas(aiohttp_client, settings: Settings, mqtt_broker: Broker) -> None:
    client = await aiohttp_client(create_app(settings))
    await wait_until(lambda: client.app[LINK].subscribed)
    t = time.time() - 20
    traffic = agents.visit("d-open-1", t, path=[(550.0, 600.0)] * 3)[:-4]  # still in the store
    traffic.append(agents.link("agent-1", 99, t, "d-open-2", "3"))
    traffic += agents.visit("d-open-2", t, seq0=200, path=[(700.0, 700.0)] * 3)[:-4]
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, traffic)
    await wait_until(lambda: client.app[INGEST].counters.acked >= len(traffic))
    spec = (await (await client.get("/api/openapi.json")).json())
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["version"] == importlib.metadata.version("floorwalker")  # not a copy that goes stale
    components = {"components": spec["components"]}
    checked = 0
    for path, item in core.OPENAPI_PATHS.items():
        op = item.get("get")
        if op is None or path.startswith("/ws/"):
            continue
        url = path.replace("{id}", "3")
        resp = await client.get(url)
        assert str(resp.status) in op["responses"], (path, resp.status)
        content = op["responses"][str(resp.status)].get("content", {})
        if "application/json" in content:
            schema = {**components, **content["application/json"]["schema"]}
            body = await resp.json()
            jsonschema_rs.validator_for(schema).validate(body)
            checked += 1
    assert checked >= 8
    positions = await (await client.get("/api/positions")).json()
    assert {p["visitor"] for p in positions["items"]} == {"d-open-1", "3"}
    resp = await client.get("/api/customers/nobody-at-all/track")
    assert resp.status == 404
