"""The dashboard in headless Chromium against the real app behind an API token, as installed: the
login page first, then charts drawn with their values readable, no console errors, no serious
accessibility violations (axe-core), dark mode, a screenshot, the "Live map" link on the same session,
and signing out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.config import load_store
from aggregator.analytics.generator import generate
from aggregator.analytics.schema import connect, ensure_core_tables
from aggregator.app import create_app
from aggregator.settings import Settings
from tests.browser.axe import check_async
from tests.conftest import CONFIG_DIR, REPO

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
TOKEN = "dashboard-test-token-0123456789"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]


@pytest.fixture
def history(sqlite_path: Path) -> Path:
    store = load_store(CONFIG_DIR / "store.toml")
    conn = connect(sqlite_path)
    try:
        ensure_core_tables(conn)
        generate(conn, plan=store.plan, entrance=store.entrance, timezone=store.timezone, days=10,
                 visits_per_day=300, seed=5, end_day=date(2026, 3, 15))
    finally:
        conn.close()
    return sqlite_path


async def test_dashboard_draws_every_chart_without_console_errors(
        history: Path, aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (the browser tests need it)")
    # The history is from March, older than the default 30-day retention: without retention_days=0
    # the writer's first pass (5 s in) deletes it, and a roll-up that starts after it finds nothing.
    settings = replace(Settings(), config_dir=CONFIG_DIR, db_path=history, mqtt_enabled=False, api_token=TOKEN,
                       retention_days=0)
    server = await aiohttp_server(create_app(settings))
    errors: list[str] = []
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1800})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            external: list[str] = []
            page.on("request", lambda req: external.append(req.url) if not req.url.startswith(
                str(server.make_url("/"))) else None)
            await page.goto(str(server.make_url("/dashboard")))
            assert "/login?next=%2Fdashboard" in page.url  # no session yet: the login page, not a 401
            await page.fill("#token", TOKEN)
            async with page.expect_navigation():
                await page.click("form.login-form button[type=submit]")
            await page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
            assert page.url == str(server.make_url("/dashboard"))  # no token in the address
            assert await page.input_value("#day") == "2026-03-15"  # the last day with data
            for chart in ("daily", "hourly", "zones", "dwell", "loyalty"):
                bars = await page.locator(f"#chart-{chart} svg rect.bar").count()
                assert bars > 0, f"chart {chart} drew nothing"
            assert await page.locator("#chart-hourly polyline.line").count() == 1
            # values readable without hovering: written on the bars, and in a table under each chart
            hourly_values = await page.locator("#chart-hourly svg text.value").all_text_contents()
            cells = page.locator("#chart-hourly details.values tbody tr td:nth-child(2)")
            hourly_table = await cells.all_text_contents()
            assert hourly_values and set(hourly_values) <= set(hourly_table)
            for chart in ("daily", "zones", "dwell", "loyalty"):
                assert await page.locator(f"#chart-{chart} details.values tbody tr").count() > 0, chart
            assert await page.locator("#chart-zones svg text.value").count() > 0
            await page.locator("#chart-hourly details.values summary").click()
            assert await page.locator("#chart-hourly details.values table").is_visible()
            assert await page.locator("#logout-form").is_visible()
            violations = await check_async(page)
            assert violations == [], "\n".join(violations)
            assert await page.locator("#visitors tbody tr").count() == 20
            assert int((await page.locator("#tiles .value").first.text_content()) or 0) > 0
            await page.click("#next")
            await page.wait_for_function("document.querySelector('#page').textContent.startsWith('21')")
            await page.fill("#day", "2026-03-14")
            await page.dispatch_event("#day", "change")
            await page.wait_for_function("document.querySelector('#status').textContent.startsWith('updated')")
            artifacts = REPO / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            await page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
            await page.emulate_media(color_scheme="dark")
            background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(17, 20, 24)", background
            violations = await check_async(page)
            assert violations == [], "\n".join(violations)
            await page.screenshot(path=str(artifacts / "dashboard-dark.png"), full_page=True)
            # the dashboard's "Live map" link opens the map on the same session (it answered 401 before)
            async with page.expect_navigation() as nav:
                await page.click("a.nav:text('Live map')")
            assert (await nav.value).status == 200 and page.url == str(server.make_url("/"))
            assert await page.title() == "Floorwalker · live map"
            await page.wait_for_function("window.__fw && window.__fw.ready", timeout=15_000)
            await page.wait_for_selector("#conn.conn-open")  # its WebSocket opened on the cookie too
            async with page.expect_navigation():
                await page.click("#logout-form button")
            assert "/login" in page.url and "You are signed out." in await page.text_content("#login-message")
            await page.goto(str(server.make_url("/dashboard")))
            assert "/login?next=" in page.url
        finally:
            await browser.close()
    assert errors == []
    assert external == []
