"""The map's HTTP side (aggregator/api/pages.py) on the real app: pages, static files, /api/store,
/api/heatmap and POST /api/new_scenario published through a real mosquitto."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import jsonschema_rs
import pytest

from agent.config import MqttSettings, load_deployment
from agent.contract import decode_scenario, scenario_topic
from aggregator.api import login, pages
from aggregator.app import create_app
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from tests.conftest import CONFIG_DIR
from tests.mqtt_helpers import Collector


@pytest.fixture
def offline(sqlite_path: Path) -> Settings:
    """For the read-only endpoints: no broker needed (the aggregator's mqtt_enabled=False mode)."""
    return replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path, mqtt_enabled=False)


@pytest.fixture
def settings(sqlite_path: Path, mqtt_broker: Broker, tmp_path: Path) -> Settings:
    return replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path,
                   mqtt=MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port),
                   client_id=f"pages-{tmp_path.name[-12:]}")


@pytest.fixture
def scenarios(mqtt_broker: Broker):
    with Collector(mqtt_broker.host, mqtt_broker.port, scenario_topic("demo")) as collector:
        yield collector


async def test_pages_and_static_files(aiohttp_client, offline: Settings) -> None:
    client = await aiohttp_client(create_app(offline))
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert '<script type="module" src="/static/app.js">' in await resp.text()
    resp = await client.get("/phone/3")
    assert resp.status == 200 and "/static/phone.js" in await resp.text()
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"), ("shoppers.js", "text/javascript")):
        resp = await client.get(f"/static/{name}")
        assert resp.status == 200 and resp.content_type == kind, name
    for bad in ("/static/nope.js", "/static/..%2Fapi%2Fpages.py", "/static/.hidden.js", "/static/app.py"):
        resp = await client.get(bad)
        assert resp.status == 404, bad


async def test_store_document_has_plan_zones_doors_and_every_sensor(aiohttp_client, offline: Settings) -> None:
    client = await aiohttp_client(create_app(offline))
    resp = await client.get("/api/store")
    assert resp.status == 200
    doc = await resp.json()
    assert (doc["width_px"], doc["height_px"], doc["metres_per_px"]) == (1808, 1315, 0.02)
    assert [z["name"] for z in doc["zones"]] == ["Women's", "Boy's", "Girl's", "Men's", "Sport"]
    assert doc["zones"][0]["polygon"] == [[445, 443], [666, 443], [666, 879], [445, 879]]
    assert doc["zones"][4]["category"] == "sport"
    assert doc["entrance"] == {"x": 937, "y": 50} and doc["exit"] == {"x": 1071, "y": 50}
    expected = set()
    for device in load_deployment(CONFIG_DIR):
        expected |= {(device.agent_id, "sniffer", s.id, s.position_px) for s in device.sniffers}
        expected |= {(device.agent_id, "pir", p.id) for p in device.pirs}
        if device.door:
            expected.add((device.agent_id, "door", device.door.id))
    got = {(s["agent"], s["kind"], s["id"], (s["x"], s["y"])) if s["kind"] == "sniffer" else
           (s["agent"], s["kind"], s["id"]) for s in doc["sensors"]}
    assert got == expected
    assert doc["agents"] == sorted({d.agent_id for d in load_deployment(CONFIG_DIR)})
    assert doc["endpoints"]["customers"] is True and doc["endpoints"]["positions"] is True
    resp = await client.get(doc["background_url"])
    assert resp.status == 200 and resp.content_type == "image/png"
    assert (await resp.read())[:8] == b"\x89PNG\r\n\x1a\n"


async def test_heatmap_counts_recent_sightings_per_cell(aiohttp_client, offline: Settings, sqlite_path: Path) -> None:
    client = await aiohttp_client(create_app(offline))  # starting the app creates the schema
    now = time.time()
    conn = sqlite3.connect(sqlite_path)
    try:
        rows = [(now - 10, "a", "d", "v", 45.0, 85.0, 1.0, None)] * 3        # cell (1, 2) at 40 px
        rows += [(now - 30, "b", "d", "v", 1807.0, 1314.0, 1.0, None)]      # last cell
        rows += [(now - 3600, "c", "d", "v", 45.0, 85.0, 1.0, None)] * 5     # an hour ago: not in 15 min
        conn.executemany("INSERT INTO sightings (ts, visitor, device, visit_id, x, y, accuracy_m, zone) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.commit()
    finally:
        conn.close()
    resp = await client.get("/api/heatmap?minutes=15")
    assert resp.status == 200
    grid = await resp.json()
    assert (grid["cols"], grid["rows"], grid["cell_px"]) == (46, 33, 40)
    counts = grid["counts"]
    assert len(counts) == 46 * 33
    assert counts[2 * 46 + 1] == 3 and counts[-1] == 1
    assert grid["total"] == 4 and grid["max"] == 3
    grid = await (await client.get("/api/heatmap?minutes=120&cell_px=100")).json()
    assert grid["total"] == 9 and grid["counts"][0] == 8
    for bad in ("minutes=0", "minutes=abc", "minutes=100000", "cell_px=5"):
        resp = await client.get(f"/api/heatmap?{bad}")
        assert resp.status == 400, bad
        assert (await resp.json())["param"] == bad.split("=")[0]


@pytest.mark.broker
async def test_new_scenario_from_the_form_is_published_for_the_agents(aiohttp_client, settings: Settings,
                                                                      scenarios: Collector) -> None:
    client = await aiohttp_client(create_app(settings))
    body = {"customer_id": "3", "step_s": 4,
            "pins": [{"type": "movement", "x": 550, "y": 600}, {"type": "focus", "x": 800, "y": 760}]}
    resp = await client.post("/api/new_scenario", json=body)
    assert resp.status == 202, await resp.text()
    answer = await resp.json()
    assert answer["topic"] == "floorwalker/demo/scenario"
    [msg] = scenarios.wait_for(1)
    scenario = decode_scenario(msg.payload)
    assert scenario.customer_id == "3" and scenario.step_s == 4.0
    assert len(scenario.path) == answer["points"] <= 100
    assert scenario.path[0].type == "ENTER" and scenario.path[-1].type == "EXIT"
    assert [{"type": s.type, "x": s.x, "y": s.y} for s in scenario.path] == answer["path"]
    assert answer["duration_s"] == (len(scenario.path) - 1) * 4


@pytest.mark.broker
async def test_new_scenario_accepts_seed_000_json(aiohttp_client, settings: Settings, scenarios: Collector,
                                                  shared_dir: Path) -> None:
    client = await aiohttp_client(create_app(settings))
    raw = (shared_dir / "reference/retail-demo/example_ui_scenario.json").read_bytes()
    resp = await client.post("/api/new_scenario", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 202, await resp.text()
    [msg] = scenarios.wait_for(1)
    scenario = decode_scenario(msg.payload)
    assert scenario.customer_id == "2"
    assert scenario.path[0].timestamp_ms == 1795435593561


BAD_SCENARIOS = [
    (b"not json", "body"),
    (json.dumps([1, 2]).encode(), "body"),
    (json.dumps({"customer_id": "999999", "pins": [{"type": "movement", "x": 5, "y": 5}]}).encode(), "customer_id"),
    (json.dumps({"customer_id": "1", "step_s": 20, "pins": [{"type": "movement", "x": 5, "y": 5}]}).encode(),
     "step_s"),
    (json.dumps({"customer_id": "1", "pins": [{"type": "focus", "x": 300 + 1000 * (i % 2), "y": 600}
                                              for i in range(30)]}).encode(), "pins"),
    (json.dumps({"customer_id": "1", "pins": [{"type": "movement", "x": 99999, "y": 5}]}).encode(), "pins[0]"),
    (b"{" * 100_000, "body"),
    (b"x" * 300_000, "body"),
]


@pytest.mark.broker
async def test_bad_scenarios_are_400_json_and_nothing_is_published(aiohttp_client, settings: Settings,
                                                                   scenarios: Collector) -> None:
    client = await aiohttp_client(create_app(settings))
    for body, field in BAD_SCENARIOS:
        resp = await client.post("/api/new_scenario", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 400, body[:60]
        answer = await resp.json()
        assert answer["param"] == field and answer["error"] and answer["status"] == 400, (body[:60], answer)
    with pytest.raises(TimeoutError):
        scenarios.wait_for(1, timeout_s=0.3)


async def test_with_a_token_pages_need_a_session_and_static_assets_do_not(aiohttp_client, offline: Settings) -> None:
    client = await aiohttp_client(create_app(replace(offline, api_token="s3cret-token-for-tests")))
    html = {"Accept": "text/html"}
    for name in ("app.js", "style.css", "dashboard.js", "dashboard.css"):
        assert (await client.get(f"/static/{name}")).status == 200, name
    assert (await client.get("/")).status == 401
    assert (await client.get("/static/..%2Fapi%2Fstore")).status in (401, 404)
    for page in ("/", "/phone/1", "/dashboard"):
        resp = await client.get(page, headers=html, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login?next="), page
    assert (await client.get("/api/store")).status == 401
    resp = await client.get("/api/store", headers={"Authorization": "Bearer s3cret-token-for-tests"})
    assert resp.status == 200
    resp = await client.post("/api/new_scenario", json={"customer_id": "1", "pins": []})
    assert resp.status == 401
    resp = await client.post("/login", data={"token": "s3cret-token-for-tests", "next": "/phone/1"})
    assert resp.status == 200 and "/static/phone.js" in await resp.text()  # followed, with the cookie
    assert (await client.get("/", headers=html)).status == 200


def _schema(path: str, method: str, status: str) -> dict:
    return pages.OPENAPI_PATHS[path][method]["responses"][status]["content"]["application/json"]["schema"]


def test_every_api_route_is_described_in_openapi() -> None:
    api = {(r.method.lower(), r.path) for r in [*pages.routes, *login.routes] if r.path.startswith("/api/")}
    described = {(m, p) for p, item in pages.OPENAPI_PATHS.items() for m in item}
    # the background picture is an image, not JSON: linked from /api/store's background_url
    assert api - {("get", "/api/store/background")} == described


@pytest.mark.broker
async def test_responses_match_the_openapi_schemas(aiohttp_client, settings: Settings, scenarios: Collector,
                                                   shared_dir: Path) -> None:
    client = await aiohttp_client(create_app(settings))
    cases = [("/api/store", "get", None, "200"), ("/api/heatmap?minutes=5", "get", None, "200"),
             ("/api/heatmap?minutes=-1", "get", None, "400"),
             ("/api/new_scenario", "post", {"customer_id": 4, "pins": [{"type": "focus", "x": 900, "y": 700}]}, "202"),
             ("/api/new_scenario", "post", {"customer_id": 4, "pins": []}, "400")]
    for url, method, body, status in cases:
        resp = await (client.get(url) if method == "get" else client.post(url, json=body))
        assert str(resp.status) == status, (url, await resp.text())
        path = url.split("?")[0]
        jsonschema_rs.validator_for(_schema(path, method, status)).validate(await resp.json())
    request_schema = pages.OPENAPI_PATHS["/api/new_scenario"]["post"]["requestBody"]["content"]["application/json"]
    validator = jsonschema_rs.validator_for(request_schema["schema"])
    validator.validate({"customer_id": 4, "pins": [{"type": "focus", "x": 900, "y": 700}]})
    validator.validate(json.loads((shared_dir / "reference/retail-demo/example_ui_scenario.json").read_text()))
    assert len(scenarios.wait_for(1)) == 1
