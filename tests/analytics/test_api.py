"""The stats endpoints through the real aggregator app (create_app).

JSON and CSV, validation errors, paging, answers always current, the token rule.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from aggregator.app import create_app
from aggregator.settings import Settings
from tests.analytics.streams import Writer
from tests.conftest import CONFIG_DIR

TZ = "Europe/Warsaw"
DAY = date(2026, 3, 11)


def at(hour: int, minute: int = 0) -> float:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=ZoneInfo(TZ)).timestamp()


@pytest.fixture
async def client(core_db: sqlite3.Connection, sqlite_path: Path,
                 aiohttp_client: Callable[[web.Application], Awaitable[TestClient]]) -> TestClient:
    w = Writer(core_db)
    for i in range(25):
        visitor = f"v{i:02d}"
        w.visit(f"visit-{i}", visitor, at(10 + i % 5), at(10 + i % 5, 30))
        w.sighting(at(10 + i % 5), visitor, "Sport" if i % 2 else "Men's", f"visit-{i}")
    w.door("d1", at(10), "in")
    # March rows, older than the default retention: keep them (the writer's first pass is 5 s in)
    settings = replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path, mqtt_enabled=False, api_token="",
                       retention_days=0)
    return await aiohttp_client(create_app(settings))


async def test_daily_json(client: TestClient) -> None:
    resp = await client.get("/api/stats/daily", params={"from": "2026-03-10", "to": "2026-03-11"})
    assert resp.status == 200
    body = await resp.json()
    assert [r["date"] for r in body["rows"]] == ["2026-03-10", "2026-03-11"]
    assert body["rows"][1]["visitors"] == 25 and body["rows"][1]["door_in"] == 1


@pytest.mark.parametrize("endpoint", ["zones", "hourly", "dwell", "loyalty", "visitors"])
async def test_each_day_endpoint_as_json_and_csv(client: TestClient, endpoint: str) -> None:
    resp = await client.get(f"/api/stats/{endpoint}", params={"date": "2026-03-11"})
    assert resp.status == 200
    rows = (await resp.json())["rows"]
    assert rows
    resp = await client.get(f"/api/stats/{endpoint}", params={"date": "2026-03-11", "format": "csv"})
    assert resp.status == 200 and resp.content_type == "text/csv"
    lines = (await resp.text()).splitlines()
    assert lines[0].split(",") == list(rows[0])
    assert len(lines) == len(rows) + 1


async def test_zones_ranked(client: TestClient) -> None:
    rows = (await (await client.get("/api/stats/zones?date=2026-03-11")).json())["rows"]
    assert [(r["zone"], r["visitors"], r["rank"]) for r in rows] == [("Men's", 13, 1), ("Sport", 12, 2)]


async def test_visitors_are_paged(client: TestClient) -> None:
    body = await (await client.get("/api/stats/visitors?date=2026-03-11&limit=10&offset=20")).json()
    assert body["total"] == 25 and len(body["rows"]) == 5 and body["next_offset"] is None
    body = await (await client.get("/api/stats/visitors?date=2026-03-11&limit=10")).json()
    assert body["next_offset"] == 10 and body["rows"][0]["visitor"] == "v00"


@pytest.mark.parametrize(("url", "param"), [
    ("/api/stats/daily?from=2026-03-12&to=2026-03-11", "from"),
    ("/api/stats/daily?from=2020-01-01&to=2026-03-11", "from"),
    ("/api/stats/daily?to=yesterday", "to"),
    ("/api/stats/zones?date=2026-02-30", "date"),
    ("/api/stats/hourly?date=2026-3-1", "date"),
    ("/api/stats/dwell?date=2026-03-11&format=xml", "format"),
    ("/api/stats/visitors?date=2026-03-11&limit=0", "limit"),
    ("/api/stats/visitors?date=2026-03-11&offset=-1", "offset"),
    ("/api/stats/visitors?date=2026-03-11&limit=ten", "limit"),
])
async def test_bad_parameters_are_400_with_a_json_reason(client: TestClient, url: str, param: str) -> None:
    resp = await client.get(url)
    assert resp.status == 400
    body = await resp.json()
    assert body["param"] == param and body["error"]


async def test_answers_include_rows_stored_a_moment_ago(client: TestClient, core_db: sqlite3.Connection) -> None:
    before = (await (await client.get("/api/stats/hourly?date=2026-03-11")).json())["rows"][20]
    Writer(core_db).sighting(at(20, 15), "late-visitor", "Sport")
    after = (await (await client.get("/api/stats/hourly?date=2026-03-11")).json())["rows"][20]
    assert (before["visitors"], after["visitors"]) == (0, 1)


async def test_range_and_dashboard_page(client: TestClient) -> None:
    body = await (await client.get("/api/stats/range")).json()
    assert (body["first"], body["last"], body["timezone"]) == ("2026-03-11", "2026-03-11", TZ)
    resp = await client.get("/dashboard")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "dashboard.js" in await resp.text()
    assert (await client.get("/dashboard/dashboard.js")).status == 200
    assert (await client.get("/dashboard/secrets.txt")).status == 404


async def test_a_token_protects_the_stats_and_the_dashboard(
        sqlite_path: Path, aiohttp_client: Callable[[web.Application], Awaitable[TestClient]]) -> None:
    settings = replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path, mqtt_enabled=False,
                       api_token="s3cret-token")
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/api/stats/daily")).status == 401
    assert (await client.get("/dashboard")).status == 401
    ok = await client.get("/api/stats/daily", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status == 200
    assert (await client.get("/dashboard?token=s3cret-token")).status == 200
