"""Live traffic through a real broker and the real ingest lands in the statistics, and equals a recompute."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.config import MqttSettings
from aggregator.analytics.definitions import AnalyticsParams
from aggregator.analytics.rollup import Rollup, snapshot
from aggregator.analytics.schema import connect
from aggregator.app import create_app
from aggregator.appkeys import INGEST, LINK
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from tests.aggregator import agents
from tests.aggregator.conftest import wait_until
from tests.conftest import CONFIG_DIR
from tests.mqtt_helpers import publish

pytestmark = pytest.mark.broker
TZ = "Europe/Warsaw"  # firmware-config/store.toml


async def test_live_visits_and_doors_show_up_in_the_stats(aiohttp_client, sqlite_path: Path, mqtt_broker: Broker,
                                                          tmp_path: Path) -> None:
    settings = replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path, api_token="",
                       mqtt=MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port),
                       client_id=f"agg-an-{tmp_path.name[-12:]}", dwell_s=2.0, absence_s=30.0, passerby_s=5.0)
    client = await aiohttp_client(create_app(settings))
    await wait_until(lambda: client.app[LINK].subscribed)
    t0 = time.time() - 120
    traffic = agents.visit("d-shopper-1", t0, step_s=1.0)                     # 8 s in Women's: a visitor
    traffic += agents.visit("d-passing-2", t0 + 30, seq0=100, step_s=0.5,      # 2 s near the door: a passer-by
                            path=[(1000.0, 120.0)] * 4)
    traffic += [agents.door("agent-1", 900, t0, "in"), agents.door("agent-1", 901, t0 + 9, "out")]
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, traffic)
    await wait_until(lambda: client.app[INGEST].counters.acked >= len(traffic))

    day = datetime.fromtimestamp(t0, ZoneInfo(TZ)).date().isoformat()
    daily = (await (await client.get("/api/stats/daily", params={"from": day, "to": day})).json())["rows"][0]
    assert (daily["visitors"], daily["passersby"], daily["door_in"], daily["door_out"]) == (1, 1, 1, 1)
    assert daily["capture_rate"] == 0.5 and daily["new_visitors"] == 1
    zones = (await (await client.get("/api/stats/zones", params={"date": day})).json())["rows"]
    assert [(z["zone"], z["visitors"]) for z in zones] == [("Women's", 1)]
    dwell = (await (await client.get("/api/stats/dwell", params={"date": day})).json())["rows"]
    assert dwell[0] == {"bucket": "<5m", "min_s": 0.0, "visits": 1}

    conn = connect(sqlite_path)
    try:
        incremental = snapshot(conn)
        Rollup(conn, AnalyticsParams(timezone=TZ)).recompute()
        assert snapshot(conn) == incremental
    finally:
        conn.close()
