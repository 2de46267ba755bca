"""``floorwalker-chain serve``: the API over the job's results, live "in store now" from a real broker,
and the chain page in headless Chromium with hostile names shown as text."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.config import MqttSettings
from aggregator.chain.serve import LIVE, create_chain_app
from aggregator.embedded_broker import Broker
from tests.aggregator.conftest import wait_until
from tests.browser.axe import check_async
from tests.mqtt_helpers import publish

EVIL = '<img src=x onerror="window.__pwned = 1">'


def _day(store: str, day: str, visitors: int) -> dict:
    return {"store": store, "date": day, "visitors": visitors, "new_visitors": visitors, "returning_visitors": 0,
            "occasional_visitors": 0, "busiest_hour": 12, "busiest_hour_visitors": 3, "passersby": 1,
            "visits": visitors, "dwell_lt_5m": 0, "dwell_5_20m": visitors, "dwell_20_60m": 0, "dwell_1_6h": 0,
            "dwell_6h_plus": 0}


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """Results laid out as the Flink job writes them (its own part-file names, a hidden in-progress file)."""
    out = tmp_path / "results"
    rows = [_day("s1", "2026-03-09", 10), _day("s2", "2026-03-09", 7), _day("*", "2026-03-09", 15),
            _day("s1", "2026-03-10", 12), _day(EVIL, "2026-03-10", 4), _day("*", "2026-03-10", 14)]
    zones = [{"store": "*", "date": "2026-03-10", "zone": EVIL, "visitors": 9, "rank": 1},
             {"store": "*", "date": "2026-03-10", "zone": "Sport", "visitors": 5, "rank": 2},
             {"store": "s1", "date": "2026-03-10", "zone": "Sport", "visitors": 5, "rank": 1}]
    for name, data in (("daily", rows), ("zones", zones)):
        (out / name).mkdir(parents=True)
        (out / name / "part-0c1d-task-0-file-0").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in data))
        (out / name / ".part-inprogress").write_bytes(b'{"store": "half')
    return out


async def test_api_answers_from_the_results(aiohttp_client, out_dir: Path) -> None:
    client = await aiohttp_client(create_chain_app(out_dir))
    chain = await (await client.get("/api/chain/daily", params={"from": "2026-03-10"})).json()
    assert [(d["date"], d["visitors"]) for d in chain["days"]] == [("2026-03-10", 14)]
    stores = await (await client.get("/api/chain/stores")).json()
    assert sorted((d["store"], d["date"]) for d in stores["days"]) == [
        (EVIL, "2026-03-10"), ("s1", "2026-03-09"), ("s1", "2026-03-10"), ("s2", "2026-03-09")]
    zones = await (await client.get("/api/chain/zones")).json()
    assert zones["date"] == "2026-03-10" and [z["zone"] for z in zones["zones"]] == [EVIL, "Sport"]
    one = await (await client.get("/api/chain/zones", params={"store": "s1", "date": "2026-03-10"})).json()
    assert [(z["zone"], z["rank"]) for z in one["zones"]] == [("Sport", 1)]
    bad = await client.get("/api/chain/daily", params={"to": "yesterday"})
    assert bad.status == 400 and "expected a date" in (await bad.json())["error"]


@pytest.mark.broker
async def test_live_in_store_now_comes_from_the_chain_broker(aiohttp_client, out_dir: Path,
                                                             mqtt_broker: Broker) -> None:
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, [
        ("floorwalker/s1/occupancy", b'{"ts": 1773150000, "people": 17, "estimate": 16.6, "sigma": 2.1}'),
        ("floorwalker/s1/agents/agent-1/status", b'{"state": "online"}'),
        ("floorwalker/s2/occupancy", b"not json"),
    ], retain=True)
    client = await aiohttp_client(create_chain_app(out_dir, MqttSettings(host=mqtt_broker.host,
                                                                          port=mqtt_broker.port)))
    live = client.app[LIVE]
    await wait_until(lambda: "s1" in live.occupancy and live.rejected >= 1 and "s1" in live.agents)
    stores = await (await client.get("/api/chain/stores")).json()
    assert stores["live_connected"] is True
    assert stores["live"] == [{"store": "s1", "in_store_now": 17, "ts": 1773150000, "agents_online": 1,
                               "agents": 1}]


@pytest.mark.browser
async def test_chain_page_shows_stores_side_by_side_and_escapes_names(
        out_dir: Path, aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]) -> None:
    from tests.analytics.test_dashboard_browser import ARGS, CHROMIUM

    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (the browser tests need it)")
    server = await aiohttp_server(create_chain_app(out_dir))
    errors: list[str] = []
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(str(server.make_url("/")))
            await page.wait_for_selector("body[data-ready='1']", timeout=15_000)
            assert await page.input_value("#day") == "2026-03-10"
            names = await page.locator("#stores tbody td:first-child").all_text_contents()
            assert names == [EVIL, "s1", "chain"]
            chain = await page.locator("#stores tr.chain td").all_text_contents()
            assert chain[2] == "14"
            assert (await page.locator("#zones tbody td:first-child").all_text_contents()) == [EVIL, "Sport"]
            assert await page.evaluate("window.__pwned === undefined")
            violations = await check_async(page)  # issue 20 item 8 holds for every page, this one too
            assert violations == [], "\n".join(violations)
            await page.emulate_media(color_scheme="dark", reduced_motion="reduce")
            background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(17, 20, 24)", background  # as the map and the dashboard
            violations = await check_async(page)
            assert violations == [], "\n".join(violations)
        finally:
            await browser.close()
    assert errors == []
