"""Logging in once, in headless Chromium against the real system behind an API token: the login
page, a wrong token, the session cookie's flags, pages and WebSockets on the cookie alone, signing
out, and an old link that still carries the token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.browser import axe
from tests.browser.conftest import TOKEN, System, log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def context(browser: object) -> Iterator[object]:
    """A fresh browser (no cookies) for each test."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})  # type: ignore[attr-defined]
    try:
        yield ctx
    finally:
        ctx.close()


def test_a_page_without_a_session_goes_to_the_login_page_and_back(context: object, system: System) -> None:
    page = context.new_page()  # type: ignore[attr-defined]
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.goto(system.url("/phone/3"))
    assert page.url == system.url("/login?next=%2Fphone%2F3")
    assert page.title() == "Floorwalker · sign in"
    assert page.locator("#login-message").is_hidden()
    violations = axe.check(page)
    assert violations == [], "\n".join(violations)
    # a wrong token: the login page again, 401, with a message saying what is wrong
    page.fill("#token", "not-the-token")
    with page.expect_navigation() as nav:
        page.click("form.login-form button[type=submit]")
    assert nav.value.status == 401
    message = page.locator("#login-message[role=alert]")
    assert message.is_visible() and "not this aggregator's API token" in message.text_content()
    assert context.cookies() == []  # type: ignore[attr-defined]
    violations = axe.check(page)  # the page with its error message
    assert violations == [], "\n".join(violations)
    # the right one: back where the user was going, with an HttpOnly, SameSite session cookie
    log_in(page, system)
    assert page.url == system.url("/phone/3")
    page.wait_for_function("window.__fw && window.__fw.ready", timeout=15_000)
    page.wait_for_selector("#phone-conn.conn-open")  # the WebSocket opened on the cookie alone
    [cookie] = context.cookies()  # type: ignore[attr-defined]
    assert cookie["name"] == "floorwalker_session" and cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert page.evaluate("document.cookie") == ""  # no script can read it
    assert not [u for u in urls if "token" in u.split("?", 1)[-1]]  # the token never went in a URL


def test_signing_out_ends_the_session(context: object, system: System) -> None:
    page = context.new_page()  # type: ignore[attr-defined]
    page.goto(system.url("/"))
    log_in(page, system)
    page.wait_for_function("window.__fw && window.__fw.ready", timeout=20_000)
    page.wait_for_selector("#logout-form:not([hidden])")
    with page.expect_navigation():
        page.click("#logout-form button")
    assert page.url == system.url("/login?signed_out=1")
    assert page.locator("#login-message").text_content() == "You are signed out."
    assert context.cookies() == []  # type: ignore[attr-defined]
    page.goto(system.url("/dashboard"))
    assert page.url.startswith(system.url("/login?next="))


def test_an_old_link_with_the_token_signs_in_and_drops_it(context: object, system: System) -> None:
    page = context.new_page()  # type: ignore[attr-defined]
    page.goto(system.url(f"/?token={TOKEN}"))
    assert page.url == system.url("/")
    page.wait_for_function("window.__fw && window.__fw.ready", timeout=20_000)
    page.wait_for_selector("#conn.conn-open")


def test_scripts_get_a_json_401_and_browsers_the_login_page(system: System) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(system.base_url + "/api/store", timeout=5)
    assert err.value.code == 401 and json.loads(err.value.read())["status"] == 401
    err.value.close()
    request = urllib.request.Request(system.base_url + "/", headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=5) as resp:  # follows the 303
        assert resp.url == system.url("/login?next=%2F")
        assert b'name="token"' in resp.read()
