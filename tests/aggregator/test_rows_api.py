"""Raw rows over HTTP: ``/api/visits`` and ``/api/events`` paged both ways, with totals and time windows."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from aggregator.app import create_app
from aggregator.settings import Settings
from aggregator.store import create_schema
from tests.analytics.streams import Writer
from tests.conftest import CONFIG_DIR

T0 = datetime(2026, 3, 11, 9, tzinfo=UTC).timestamp()
N_VISITS, N_EVENTS = 250, 120


@pytest.fixture
async def client(sqlite_path: Path, aiohttp_client: Callable[[web.Application], Awaitable[TestClient]]) -> TestClient:
    create_schema(sqlite_path)
    conn = sqlite3.connect(sqlite_path)
    w = Writer(conn)
    for i in range(N_VISITS):  # a visit every 60 s, every 10th still open, every 7th a passer-by
        w.visit(f"visit-{i:04d}", f"v{i % 40:02d}", T0 + i * 60, None if i % 10 == 9 else T0 + i * 60 + 300,
                passerby=int(i % 7 == 0))
    conn.executemany("INSERT INTO customer_events (ts, kind, visitor, x, y, dep) VALUES (?, ?, ?, ?, ?, ?)",
                     ((T0 + i * 30, ("enter", "move", "exit", "browsing")[i % 4], f"v{i % 40:02d}", i, i, None)
                      for i in range(N_EVENTS)))
    conn.commit()
    conn.close()
    settings = replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path, mqtt_enabled=False, api_token="",
                       retention_days=0)
    return await aiohttp_client(create_app(settings))


async def _all_pages(client: TestClient, url: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    offset, total = 0, -1
    while True:
        body = await (await client.get(url, params={**params, "offset": offset})).json()
        total = body["total"]
        items += body["items"]
        if body.get("next_offset") is None and offset + len(body["items"]) >= total:
            return items, total
        offset += len(body["items"])


async def test_visits_paged_oldest_first_equal_to_the_table(client: TestClient, sqlite_path: Path) -> None:
    items, total = await _all_pages(client, "/api/visits", {"limit": 100})
    assert total == N_VISITS and len(items) == N_VISITS
    with sqlite3.connect(sqlite_path) as conn:
        rows = conn.execute("SELECT visit_id, end_ts, passerby FROM visits ORDER BY start_ts").fetchall()
    assert [(v["visit_id"], v["end_ts"], v["passerby"]) for v in items] == [(a, b, bool(c)) for a, b, c in rows]
    assert set(items[0]) == {"visit_id", "visitor", "device", "customer_id", "start_ts", "end_ts", "last_seen_ts",
                             "passerby"}


async def test_visits_window_order_and_visitor(client: TestClient) -> None:
    params = {"since": T0 + 60 * 100, "until": T0 + 60 * 150, "order": "desc", "limit": 1000}
    body = await (await client.get("/api/visits", params=params)).json()
    assert body["total"] == 50 and body["next_offset"] is None
    assert [v["visit_id"] for v in body["items"]] == [f"visit-{i:04d}" for i in range(149, 99, -1)]
    body = await (await client.get("/api/visits", params={"visitor": "v03", "limit": 2})).json()
    assert body["total"] == len(range(3, N_VISITS, 40)) and body["next_offset"] == 2
    assert all(v["visitor"] == "v03" for v in body["items"])


async def test_events_oldest_first_with_until_and_total(client: TestClient) -> None:
    body = await (await client.get("/api/events", params={"order": "asc", "limit": 10})).json()
    assert body["total"] == N_EVENTS and [e["ts"] for e in body["items"]] == [T0 + i * 30 for i in range(10)]
    body = await (await client.get("/api/events", params={"limit": 10})).json()  # newest first by default
    assert body["items"][0]["ts"] == T0 + (N_EVENTS - 1) * 30
    params = {"since": T0 + 300, "until": T0 + 600, "kind": "enter", "order": "asc", "limit": 2, "offset": 2}
    body = await (await client.get("/api/events", params=params)).json()
    expected = [i for i in range(10, 20) if i % 4 == 0]  # ts in [300, 600) s and kind enter
    assert body["total"] == len(expected) and [e["x"] for e in body["items"]] == expected[2:4]
    body = await (await client.get("/api/events", params={"after_id": 100, "limit": 1000})).json()
    assert [e["id"] for e in body["items"]] == list(range(101, N_EVENTS + 1)) and body["total"] == N_EVENTS - 100


@pytest.mark.parametrize(("url", "param"), [
    ("/api/visits?order=sideways", "order"),
    ("/api/visits?since=100&until=50", "until"),
    ("/api/visits?until=soon", "until"),
    ("/api/visits?limit=1001", "limit"),
    ("/api/events?until=nan", "until"),
    ("/api/events?order=random", "order"),
])
async def test_bad_parameters_are_a_400_naming_them(client: TestClient, url: str, param: str) -> None:
    resp = await client.get(url)
    assert resp.status == 400 and (await resp.json())["param"] == param
