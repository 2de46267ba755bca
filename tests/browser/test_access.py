"""The pages for people who do not use a mouse or do not see colour well, in headless Chromium
against the real system: axe-core finds no serious or critical violation on the map (both tabs),
the phone view and the login page (tests/browser/test_login.py); tabs are ARIA tabs driven by the
arrow keys; the shoppers on the canvas are also a keyboard list with the same details; dark mode
and reduced motion are honoured."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.browser import axe
from tests.browser.conftest import TOKEN, System, Tab
from tests.browser.test_map import shopper, stroll, walk

pytestmark = pytest.mark.browser

DETAILS = ("#d-id", "#d-customer", "#d-segment", "#d-zone")


def details(tab: Tab) -> dict[str, str]:
    tab.page.wait_for_selector("#details-body:not([hidden])")
    return {sel: tab.page.locator(sel).text_content() or "" for sel in DETAILS}


def assert_no_blocking_violations(tab: Tab) -> None:
    violations = axe.check(tab.page)
    assert violations == [], "\n".join(violations)


def test_axe_finds_what_it_should(browser: object) -> None:
    """The harness itself: a page with a known critical and a known serious violation."""
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        page.set_content('<html lang="en"><body><main><h1>x</h1><img src="data:,">'
                         '<p style="color:#bbb;background:#fff">faint</p></main></body></html>')
        found = "\n".join(axe.check(page))
        assert "critical image-alt" in found and "serious color-contrast" in found
    finally:
        page.close()


def test_the_map_has_no_serious_accessibility_violations(map_tab: Tab, system: System) -> None:
    walk(system, "d-access-axe", None, [(750.0, 840.0)] * 3, time.time() - 3)
    shopper(map_tab, "s.id === 'd-access-axe'")
    map_tab.page.wait_for_selector("#shopper-list [role=option]")
    assert_no_blocking_violations(map_tab)
    for panel in ("offers", "offerlog", "sensors", "events"):
        map_tab.page.click(f"#side-tab-{panel}")
        assert_no_blocking_violations(map_tab)
    map_tab.page.click("#tab-btn-scenario")
    map_tab.page.wait_for_selector("#scn-map canvas[data-layer=pins]")
    assert_no_blocking_violations(map_tab)
    map_tab.page.click("#tab-btn-preview")
    assert map_tab.errors == []


def test_the_phone_view_has_no_serious_accessibility_violations(map_tab: Tab, system: System) -> None:
    phone = Tab(map_tab.page.context, system, "/phone/3", viewport={"width": 420, "height": 860})
    try:
        phone.page.wait_for_function("window.__fw.ready", timeout=15_000)
        assert_no_blocking_violations(phone)
        assert phone.errors == []
    finally:
        phone.close()


@pytest.mark.parametrize("tablist", ["side-tabs", "main-tabs"])
def test_tabs_are_aria_tabs_driven_by_the_arrow_keys(map_tab: Tab, tablist: str) -> None:
    page = map_tab.page
    tabs = page.locator(f"#{tablist} [role=tab]")
    ids = [tabs.nth(i).get_attribute("id") for i in range(tabs.count())]

    def state() -> tuple[str, str, list[str]]:
        selected = [i for i in ids if page.get_attribute(f"#{i}", "aria-selected") == "true"]
        assert len(selected) == 1, selected
        panel = page.get_attribute(f"#{selected[0]}", "aria-controls")
        assert page.is_visible(f"#{panel}"), panel
        assert page.get_attribute(f"#{panel}", "role") == "tabpanel"
        assert page.get_attribute(f"#{panel}", "aria-labelledby") == selected[0]
        stops = [i for i in ids if page.get_attribute(f"#{i}", "tabindex") == "0"]
        focused = page.evaluate("document.activeElement.id")
        return selected[0], focused, stops

    page.focus(f"#{ids[0]}")
    assert state() == (ids[0], ids[0], [ids[0]])
    page.keyboard.press("ArrowRight")
    assert state() == (ids[1], ids[1], [ids[1]])  # one tab stop: the selected tab
    page.keyboard.press("End")
    assert state()[:2] == (ids[-1], ids[-1])
    page.keyboard.press("ArrowRight")  # wraps around
    assert state()[:2] == (ids[0], ids[0])
    page.keyboard.press("ArrowLeft")
    assert state()[:2] == (ids[-1], ids[-1])
    page.keyboard.press("Home")
    assert state()[:2] == (ids[0], ids[0])
    assert map_tab.errors == []


def test_the_shoppers_on_the_plan_are_a_keyboard_list_with_the_same_details(map_tab: Tab, system: System) -> None:
    page = map_tab.page
    device = "d-access-keyboard"
    walk(system, device, None, [(1150.0, 700.0)] * 3, time.time() - 3)  # a spot no other test uses
    shopper(map_tab, f"s.id === '{device}'")
    page.wait_for_selector(f"#shopper-list [role=option][data-id='{device}']")
    # Tab from the last control of the toolbar reaches the list: nothing in between needs a mouse
    page.focus("#follow-customer")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "shopper-list"
    page.keyboard.press("Home")
    for _ in range(page.locator("#shopper-list [role=option]").count()):
        active = page.get_attribute("#shopper-list", "aria-activedescendant")
        if page.get_attribute(f"#{active}", "data-id") == device:
            break
        page.keyboard.press("ArrowDown")
    row = page.locator(f"#shopper-list [role=option][data-id='{device}']")
    assert row.get_attribute("aria-selected") == "true"
    assert page.get_attribute("#shopper-list", "aria-activedescendant") == row.get_attribute("id")
    by_keyboard = details(map_tab)
    assert by_keyboard["#d-id"] == device and by_keyboard["#d-zone"] == "Men's"
    assert "Men's" in (row.text_content() or "")
    page.keyboard.press("Escape")
    assert page.locator("#details-body").is_hidden()
    # the same details as clicking the dot
    map_tab.page.wait_for_timeout(600)  # the dot glides to its position first
    pos = page.evaluate("(id) => window.__fw.dotClientPosition(id)", device)
    page.mouse.click(pos["x"], pos["y"])
    assert details(map_tab) == by_keyboard
    assert row.get_attribute("aria-selected") == "true"  # the list follows a click too
    page.locator("#d-close").click()
    assert map_tab.errors == []


def test_shopper_states_differ_by_shape_as_well_as_colour(map_tab: Tab) -> None:
    """The dot sprites: moving a circle (its bounding box's corners empty), browsing a square
    (corners filled), offered a diamond (corners empty, tips on the box's edges)."""
    probe = """(state) => {
        const sprite = window.__fw.live.sprite(state), dpr = window.__fw.view.dpr;
        const c = sprite.getContext('2d'), m = sprite.width / 2;
        const alpha = (dx, dy) => c.getImageData(Math.floor(m + dx * dpr), Math.floor(m + dy * dpr), 1, 1).data[3];
        return {corner: alpha(-4, -4), tip: alpha(0, -5.5), side: alpha(-4.5, 0)};
    }"""
    found = {state: map_tab.page.evaluate(probe, state) for state in ("moving", "browsing", "offered")}
    corners = {state: f["corner"] for state, f in found.items()}
    assert corners["browsing"] > 200 and corners["moving"] < 128 and corners["offered"] < 30, found
    assert found["offered"]["tip"] > 2 * found["browsing"]["tip"], found
    assert min(f["side"] for f in found.values()) > 0, found


@pytest.fixture
def dark_tab(browser: object, system: System) -> Iterator[Tab]:
    context = browser.new_context(color_scheme="dark", reduced_motion="reduce")  # type: ignore[attr-defined]
    tab = Tab(context, system, "/", log_in_as=TOKEN)
    tab.page.wait_for_function("window.__fw && window.__fw.ready", timeout=20_000)
    try:
        yield tab
    finally:
        tab.close()
        context.close()


def test_dark_mode_and_reduced_motion_are_honoured(dark_tab: Tab, system: System) -> None:
    page = dark_tab.page
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(16, 18, 20)"
    assert page.evaluate("getComputedStyle(document.querySelector('.panel')).backgroundColor") == "rgb(28, 31, 35)"
    assert page.evaluate("window.__fw.live.reducedMotion") is True
    device = "d-access-still"
    path = stroll([(600.0, 700.0), (1250.0, 820.0)], dwell_points=2)
    walk(system, device, None, path, time.time() - len(path))
    page.wait_for_function(f"""() => {{
        const s = window.__fw.shoppers.byId.get('{device}');
        return s && s.tx > 800 && window.__fw.stats.frames > 0; }}""", timeout=30_000)
    # no glide: after the next frames the dot is where the shopper is, not on its way there
    frames = page.evaluate("window.__fw.stats.frames")
    page.wait_for_function(f"window.__fw.stats.frames > {frames + 2}")
    assert page.evaluate(f"(() => {{ const s = window.__fw.shoppers.byId.get('{device}'); "
                         "return [s.x - s.tx, s.y - s.ty]; })()") == [0, 0]
    assert_no_blocking_violations(dark_tab)
    dark_tab.shot("map-dark")
    assert dark_tab.errors == []
