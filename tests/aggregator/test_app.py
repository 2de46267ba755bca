"""The application skeleton: schema, health, route registry, JSON errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aggregator.app import create_app
from aggregator.settings import Settings
from tests.aggregator.conftest import wait_until

CORE_TABLES = {"messages", "dead_letters", "visits", "sightings", "door_events", "motion_events", "links",
               "customer_events"}


async def test_schema_and_health(aiohttp_client, settings: Settings, sqlite_path: Path) -> None:
    client = await aiohttp_client(create_app(settings))
    await wait_until(lambda: client.app is not None)
    conn = sqlite3.connect(sqlite_path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert CORE_TABLES <= tables
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = [r[1] for r in conn.execute("PRAGMA table_info(visits)")]
        assert cols == ["visit_id", "visitor", "device", "customer_id", "start_ts", "end_ts", "last_seen_ts",
                        "passerby", "seq"]
    finally:
        conn.close()
    body = None

    async def healthy() -> bool:
        nonlocal body
        resp = await client.get("/health")
        body = await resp.json()
        return resp.status == 200

    await wait_until(healthy, timeout_s=5)
    assert body is not None and body["status"] == "ok", body
    assert body["broker_connected"] is True and body["db_writable"] is True


async def test_unknown_path_is_json_404(aiohttp_client, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/api/nope")
    assert resp.status == 404
    assert (await resp.json())["status"] == 404
    resp = await client.get("/api/positions?limit=0")
    assert resp.status == 400
    assert (await resp.json())["param"] == "limit"
