"""The dashboard's visitors CSV: every visitor of the day, streamed, no row limit (it stopped at 1,000)."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from aggregator.app import create_app
from aggregator.settings import Settings
from tests.analytics.streams import Writer
from tests.conftest import CONFIG_DIR

T0 = datetime(2026, 3, 11, 9, tzinfo=UTC).timestamp()


async def test_visitors_csv_has_every_visitor_of_the_day(sqlite_path: Path, core_db: sqlite3.Connection,
                                                         aiohttp_client: Callable[[web.Application],
                                                                                  Awaitable[TestClient]]) -> None:
    """More visitors than one page of the stream (5,000) and than the old 1,000-row cap."""
    n = 5_300
    w = Writer(core_db)
    for i in range(n):
        w.visit(f"visit-{i}", f"v{i:05d}", T0 + i, T0 + i + 600)
        w.sighting(T0 + i, f"v{i:05d}", "Sport", f"visit-{i}")
    core_db.commit()
    settings = replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path, mqtt_enabled=False, api_token="",
                       retention_days=0)
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/api/stats/visitors", params={"date": "2026-03-11", "format": "csv"})
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["visitor"] for r in rows] == [f"v{i:05d}" for i in range(n)]
    paged = await client.get("/api/stats/visitors", params={"date": "2026-03-11", "format": "csv", "limit": 10})
    assert len((await paged.text()).splitlines()) == 11  # an explicit page is still a page
