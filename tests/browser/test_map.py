"""The live map, the phone view and the scenario tab in headless Chromium against the real system.

Tests run in file order on one map page (tests/browser/conftest.py); each writes a screenshot to
test-artifacts/ (gitignored). Shopper traffic comes from four mock agents (simulated phones through
the real serial reader, presence, hashing and MQTT) and, where a test needs a particular shopper
quickly, from agent-tier messages published on the real broker exactly as an agent would.
"""

from __future__ import annotations

import time

import pytest

from tests.aggregator import agents
from tests.browser.conftest import AGENTS, EVIL_ID, EVIL_NAME, System, Tab, _stop
from tests.mqtt_helpers import publish

pytestmark = pytest.mark.browser

_seq = iter(range(10**9, 2 * 10**9))  # message ids far from the mock agents' own sequence numbers


def walk(system: System, device: str, customer_id: str | None, points: list[tuple[float, float]],
         t0: float, step_s: float = 1.0) -> None:
    """Publish, as all four agents, a linked device walking ``points`` (enter, then moves; no exit)."""
    traffic = []
    if customer_id is not None:
        traffic.append(agents.link("agent-1", next(_seq), t0 - 1, device, customer_id))
    for i, (x, y) in enumerate(points):
        for k, agent in enumerate(AGENTS):
            traffic.append(agents.presence("enter" if i == 0 else "move", agent, next(_seq),
                                           t0 + i * step_s + 0.01 * k, device, x, y))
    publish(system.broker.host, system.broker.port, traffic)


def stroll(stops: list[tuple[float, float]], dwell_points: int = 8, step_px: float = 50.0) -> list[tuple[float, float]]:
    """A walkable path: ``dwell_points`` at each stop, walking ``step_px`` (1 m) per second between them,
    so the aggregator's walking-speed filter follows it instead of smoothing a teleport away."""
    out: list[tuple[float, float]] = []
    for i, (x, y) in enumerate(stops):
        if i:
            px, py = stops[i - 1]
            n = max(1, int(((x - px) ** 2 + (y - py) ** 2) ** 0.5 // step_px))
            out += [(px + (x - px) * k / n, py + (y - py) * k / n) for k in range(1, n)]
        out += [(x, y)] * dwell_points
    return out


def shopper(tab: Tab, where: str, timeout_ms: int = 30_000) -> dict:
    """Wait until a shopper matching the JS condition ``where`` (on ``s``) is on the map; return it."""
    js = f"""() => {{
        for (const s of window.__fw.shoppers.byId.values()) {{
            if (!s.exitedAtMs && Number.isFinite(s.tx) && ({where}))
                return {{id: s.id, x: s.tx, y: s.ty, customerId: s.customerId, zone: s.zone, state: s.state}};
        }}
        return null;
    }}"""
    return tab.page.wait_for_function(js, timeout=timeout_ms).json_value()


def click_dot(tab: Tab, shopper_id: str) -> None:
    """Click where the page draws this shopper's dot (after it has glided to its position)."""
    tab.page.wait_for_timeout(600)
    pos = tab.page.evaluate("(id) => window.__fw.dotClientPosition(id)", shopper_id)
    assert pos is not None
    tab.page.mouse.click(pos["x"], pos["y"])


def test_page_loads_without_console_errors_and_draws_the_plan(map_tab: Tab, system: System) -> None:
    page = map_tab.page
    assert page.title() == "Floorwalker · live map"
    assert page.locator("#store-name").text_content() == "Floorwalker demo store"
    assert page.locator("#map canvas").count() == 3
    # the base layer is painted (the plan picture), not blank
    painted = page.evaluate("""() => {
        const c = document.querySelector('#map canvas[data-layer=base]');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let dark = 0; for (let i = 0; i < d.length; i += 4 * 97) if (d[i] < 128) dark++;
        return dark; }""")
    assert painted > 50
    # the four agents come online (retained status -> agent events) and their sensors turn green
    page.locator(".side-tab[data-panel=sensors]").click()
    page.wait_for_function("document.querySelectorAll('#sensor-list li.agent-online').length === 4", timeout=30_000)
    sensors = page.locator("#sensor-list").text_content()
    assert "sniffer s1" in sensors and "door door-main" in sensors
    page.wait_for_selector("#conn.conn-open")
    map_tab.shot("map-loaded")
    assert map_tab.errors == []
    assert map_tab.external == []  # nothing fetched from anywhere but the aggregator


def test_a_mock_shopper_appears_and_moves(map_tab: Tab) -> None:
    page = map_tab.page
    first = shopper(map_tab, "true", timeout_ms=60_000)
    moved = page.wait_for_function(
        """(first) => {
            for (const s of window.__fw.shoppers.byId.values())
                if (s.trailLen >= 2) {
                    const a = s.trailAt(0), b = s.trailAt(1);
                    if (Math.hypot(s.trailX[a] - s.trailX[b], s.trailY[a] - s.trailY[b]) > 1) return s.id;
                }
            return null;
        }""", arg=first, timeout=60_000).json_value()
    assert moved
    page.wait_for_function("Number(document.querySelector('#count-now').textContent) >= 1")
    assert page.evaluate("window.__fw.stats.frames") > 10
    map_tab.shot("map-shoppers")
    assert map_tab.errors == []


def test_heat_map_layer_switches_on_and_off(map_tab: Tab) -> None:
    page = map_tab.page
    heat_pixels = """() => {
        const c = document.querySelector('#map canvas[data-layer=heat]');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4 * 13) if (d[i] > 0) n++;
        return n; }"""
    assert page.evaluate(heat_pixels) == 0
    page.locator("#heat-toggle").check()
    page.wait_for_function("document.querySelector('#map-status').textContent.startsWith('heat map:')")
    # the mock shoppers' positions are in the sightings table by now
    page.wait_for_function(f"({heat_pixels})() > 0", timeout=10_000)
    map_tab.shot("map-heat")
    page.locator("#heat-toggle").uncheck()
    assert page.evaluate(heat_pixels) == 0
    assert map_tab.errors == []


def test_clicking_a_dot_shows_its_details(map_tab: Tab, system: System) -> None:
    page = map_tab.page
    device = "d-browser-details"
    walk(system, device, None, [(900.0, 760.0)] * 3, time.time() - 3)
    found = shopper(map_tab, f"s.id === '{device}'")
    click_dot(map_tab, found["id"])
    page.wait_for_selector("#details-body:not([hidden])")
    assert page.locator("#d-id").text_content() == device
    assert page.locator("#d-zone").text_content() == "Men's"
    assert page.locator("#d-customer").text_content() == "not a loyalty customer"
    assert page.locator("#d-dwell").text_content().endswith("s")
    map_tab.shot("map-details")
    page.locator("#d-close").click()
    assert page.locator("#details-body").is_hidden()


def test_a_customer_name_with_markup_is_shown_as_text(map_tab: Tab, system: System) -> None:
    page = map_tab.page
    scripts_before = page.evaluate("document.scripts.length")
    walk(system, "d-browser-evil", EVIL_ID, [(550.0, 600.0)] * 3, time.time() - 3)
    found = shopper(map_tab, f"s.customerId === '{EVIL_ID}'")
    click_dot(map_tab, found["id"])
    page.wait_for_selector("#details-body:not([hidden])")
    assert page.locator("#d-customer").text_content() == f"{EVIL_NAME} (#{EVIL_ID})"
    assert page.locator("#d-segment").text_content() == "female, age 30"
    # the name also fills the follow list and the log, as text
    assert EVIL_NAME in page.locator("#follow-customer").text_content()
    page.wait_for_function(f"document.querySelector('#event-log').textContent.includes({EVIL_NAME!r})")
    assert page.evaluate("document.scripts.length") == scripts_before
    assert page.locator("#details img, #event-log img, #follow-customer img").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    map_tab.shot("map-markup-name")
    assert map_tab.errors == []


def test_an_offer_shows_up_in_the_phone_view_and_on_the_map(map_tab: Tab, browser: object, system: System) -> None:
    customers = system.get_json("/api/customers?limit=1000")["items"]
    cid = next(str(c["customer_id"]) for c in customers if c.get("gender") == "F" and 25 <= int(c["age"]) <= 35
               and str(c["customer_id"]) != EVIL_ID)
    name = next(c["name"] for c in customers if str(c["customer_id"]) == cid)
    phone = Tab(map_tab.page.context, system, f"/phone/{cid}", viewport={"width": 420, "height": 860})
    try:
        phone.page.wait_for_function("window.__fw.ready", timeout=15_000)
        phone.page.wait_for_selector("#phone-conn.conn-open")
        assert phone.page.locator("#phone-name").text_content() == name
        assert phone.page.locator(".coupon").count() == 0
        # Women's (clothing) -> Sport (shoes) -> Men's (a different clothing item): seed 001's rule fires.
        path = stroll([(550.0, 600.0), (900.0, 1100.0), (1000.0, 780.0)])
        walk(system, "d-browser-offer", cid, path, time.time() - len(path))
        phone.page.wait_for_selector(".coupon", timeout=30_000)
        card = phone.page.locator(".coupon").first
        assert card.locator(".coupon-dep").text_content() == "Men"
        assert card.locator(".coupon-discount").text_content().endswith("% off")
        assert "buy" in card.locator(".coupon-kind").text_content()
        products = card.locator(".coupon-products li")
        assert products.count() >= 1
        assert products.first.locator(".product-price").text_content().startswith("$")
        assert phone.page.locator("#phone-count").text_content() == "1"
        phone.shot("phone-offer")
        assert phone.errors == []
        assert phone.external == []
    finally:
        phone.close()
    # the map got it too: the offers panel, the offer log, the shopper's colour
    page = map_tab.page
    page.locator(".side-tab[data-panel=offers]").click()
    page.wait_for_selector(f"#offers .coupon[data-customer='{cid}']", timeout=10_000)
    page.locator(".side-tab[data-panel=offerlog]").click()
    page.wait_for_function(f"document.querySelector('#offer-log').textContent.includes('User {cid} triggered offer')",
                           timeout=10_000)
    shopper(map_tab, f"s.customerId === '{cid}' && s.state === 'offered'", timeout_ms=10_000)
    map_tab.shot("map-offer")
    page.locator(".side-tab[data-panel=events]").click()
    assert map_tab.errors == []


def test_a_scenario_made_by_clicking_pins_is_played_on_the_map(map_tab: Tab) -> None:
    page = map_tab.page
    page.locator("#tab-btn-scenario").click()
    page.wait_for_selector("#scn-map canvas[data-layer=pins]")
    page.select_option("#scn-customer", "1")
    page.wait_for_timeout(200)
    for x, y, kind in [(550, 500, "movement"), (850, 760, "focus")]:
        page.check(f"input[name=scn-pin][value={kind}]")
        pos = page.evaluate("([x, y]) => window.__fw.scenarioPlanToClient(x, y)", [x, y])
        page.mouse.click(pos["x"], pos["y"])
    assert page.locator("#scn-pins li").count() == 2
    page.locator("#scn-step").fill("1")
    page.locator("#scn-start").click()
    page.wait_for_selector("#scn-result.ok")
    assert "Playing" in page.locator("#scn-result").text_content()
    map_tab.shot("scenario-pins")
    page.locator("#scn-watch").click()
    assert page.locator("#tab-preview").is_visible()
    assert page.input_value("#follow-customer") == "1"
    # played by the mock agents through their simulated sniffers, fused by the aggregator
    found = shopper(map_tab, "s.customerId === '1'", timeout_ms=60_000)
    assert found["customerId"] == "1"
    # following the customer selects their dot as soon as it appears
    page.wait_for_function("document.querySelector('#d-customer').textContent.startsWith('Errol Hilll (#1)')",
                           timeout=5_000)
    page.wait_for_timeout(800)
    map_tab.shot("scenario-played")
    assert map_tab.errors == []


def test_a_sensor_that_goes_down_is_crossed_out_not_only_red(map_tab: Tab, system: System) -> None:
    """Runs last: it stops agent-4 (a clean exit publishes its retained offline status)."""
    page = map_tab.page
    centre = """() => {
        const s = window.__fw.view.store.sensors.find((s) => s.agent === 'agent-4' && s.kind === 'sniffer');
        const v = window.__fw.view, k = v.scale * v.dpr;
        const c = document.querySelector('#map canvas[data-layer=base]');
        return Array.from(c.getContext('2d').getImageData(Math.round(s.x * k), Math.round(s.y * k), 1, 1).data);
    }"""
    r, g, b, _ = page.evaluate(centre)
    assert g > r + 40 and g > b, (r, g, b)  # online: filled green
    page.locator("#side-tab-sensors").click()
    _stop(system.procs[AGENTS.index("agent-4") + 1])
    page.wait_for_selector("#sensor-list li.agent-offline[data-agent='agent-4'] i.sensor-offline", timeout=30_000)
    assert "offline" in page.locator("#sensor-list li[data-agent='agent-4']").text_content()
    page.wait_for_function(f"(({centre})()).slice(0, 3).every((v) => v > 200)")  # the white core of the cross
    assert page.locator("#sensor-list li.agent-online").count() == 3
    map_tab.shot("map-sensor-down")
    assert map_tab.errors == []
