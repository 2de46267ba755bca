"""Auth: a configured token guards everything but /health and the login page; a browser logs in once
for a session cookie; without a token, writes need localhost."""

from __future__ import annotations

import time
from dataclasses import replace
from http.cookies import SimpleCookie

import aiohttp
import pytest

from aggregator.app import create_app
from aggregator.sessions import COOKIE_NAME, Sessions
from aggregator.settings import Settings

TOKEN = "s3cret-token"
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def offline(settings: Settings) -> Settings:
    return replace(settings, mqtt_enabled=False)


@pytest.fixture
async def guarded(aiohttp_client, offline: Settings):
    return await aiohttp_client(create_app(replace(offline, api_token=TOKEN)))


async def _login(client, token: str = TOKEN, next_path: str = "/") -> aiohttp.ClientResponse:
    return await client.post("/login", data={"token": token, "next": next_path}, allow_redirects=False)


def _cookie(resp: aiohttp.ClientResponse) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar


async def test_token_required_everywhere_but_health(guarded) -> None:
    client = guarded
    assert (await client.get("/health")).status == 200
    for path in ("/api/positions", "/metrics", "/api/openapi.json", "/api/agents", "/dashboard/dashboard.js"):
        resp = await client.get(path)
        assert resp.status == 401, path
        assert (await resp.json())["status"] == 401
        assert "Bearer" in resp.headers["WWW-Authenticate"]
    assert (await client.get("/api/positions", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get("/api/positions", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
    resp = await client.post("/api/customers/1/link", json={"device": "d-1"})
    assert resp.status == 401
    resp = await client.post("/api/customers/1/link", json={"device": "d-1"},
                             headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 201


async def test_the_token_no_longer_travels_in_api_urls(guarded) -> None:
    assert (await guarded.get(f"/api/positions?token={TOKEN}")).status == 401


async def test_websockets_take_the_header_the_cookie_or_the_old_query(guarded) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await guarded.ws_connect("/ws/movement")
    assert err.value.status == 401
    for kwargs in ({"headers": {"Authorization": f"Bearer {TOKEN}"}}, {}):
        if not kwargs:
            assert (await _login(guarded)).status == 303  # the client's cookie jar keeps the session
        ws = await guarded.ws_connect("/ws/movement", **kwargs)
        await ws.close()
    guarded.session.cookie_jar.clear()
    ws = await guarded.ws_connect(f"/ws/movement?token={TOKEN}")  # consumers that cannot send headers
    await ws.close()


async def test_a_page_without_a_session_redirects_to_the_login_page(guarded) -> None:
    resp = await guarded.get("/dashboard?day=1", headers=HTML, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/login?next=%2Fdashboard%3Fday%3D1"
    resp = await guarded.get(resp.headers["Location"], headers=HTML)
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert '<form method="post" action="/login"' in page and 'name="token"' in page
    assert 'name="next" value="/dashboard?day=1"' in page
    # the same path fetched by a script is an API answer, not a redirect
    assert (await guarded.get("/dashboard", allow_redirects=False)).status == 401


async def test_login_sets_an_httponly_samesite_cookie_that_opens_pages_assets_and_apis(guarded) -> None:
    resp = await _login(guarded, next_path="/dashboard")
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard"
    morsel = _cookie(resp)[COOKIE_NAME]
    assert morsel["httponly"] is True and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert int(morsel["max-age"]) == 7 * 24 * 3600
    assert not morsel["secure"]  # plain HTTP here; set when the request came over HTTPS
    for path in ("/", "/dashboard", "/dashboard/dashboard.js", "/dashboard/dashboard.css", "/phone/1",
                 "/api/store", "/api/stats/range"):
        resp = await guarded.get(path, headers=HTML, allow_redirects=False)
        assert resp.status == 200, path
        if not path.startswith("/api/"):  # pages revalidate: none is shown from the cache after a sign-out
            assert resp.headers["Cache-Control"] in ("no-cache", "no-store"), path
    session = await (await guarded.get("/api/session")).json()
    assert session["via"] == "cookie" and session["login_required"] is True
    assert session["expires_ts"] > time.time() + 6 * 24 * 3600


@pytest.mark.parametrize(("token", "message"), [("wrong-token", "not this aggregator"), ("", "Enter the API token"),
                                                (TOKEN + "x", "not this aggregator")])
async def test_a_bad_login_is_a_401_page_with_a_message_and_no_cookie(guarded, token: str, message: str) -> None:
    resp = await _login(guarded, token=token, next_path="/phone/3")
    assert resp.status == 401 and resp.content_type == "text/html"
    assert COOKIE_NAME not in _cookie(resp)
    page = await resp.text()
    assert message in page and 'role="alert"' in page
    assert 'name="next" value="/phone/3"' in page  # a second try still returns where the user was going
    assert (await guarded.get("/api/store")).status == 401


async def test_unreadable_login_bodies_are_answered_not_crashed(guarded) -> None:
    resp = await guarded.post("/login", json={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 401 and "Enter the API token" in await resp.text()
    form = aiohttp.FormData()
    form.add_field("token", b"s3cret-token", filename="token.txt")
    resp = await guarded.post("/login", data=form, allow_redirects=False)
    assert resp.status == 400 and "could not be read" in await resp.text()
    resp = await guarded.post("/login", data=b"\xff\xfe" * 100,
                              headers={"Content-Type": "application/x-www-form-urlencoded"}, allow_redirects=False)
    assert resp.status in (400, 401)


@pytest.mark.parametrize("evil", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)",
                                  "dashboard"])
async def test_login_never_redirects_off_site(guarded, evil: str) -> None:
    resp = await _login(guarded, next_path=evil)
    assert resp.status == 303 and resp.headers["Location"] == "/"


async def test_the_next_address_is_escaped_in_the_page(guarded) -> None:
    resp = await guarded.get('/login?next=/"><script>x()</script>', headers=HTML)
    page = await resp.text()
    assert "<script>x()" not in page and "/&quot;&gt;&lt;script&gt;" in page


async def test_logout_ends_the_session_for_every_copy_of_the_cookie(guarded) -> None:
    value = _cookie(await _login(guarded))[COOKIE_NAME].value
    assert (await guarded.get("/api/store")).status == 200
    resp = await guarded.post("/logout", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login?signed_out=1"
    assert _cookie(resp)[COOKIE_NAME].value == ""  # the browser drops it
    assert (await guarded.get("/api/store")).status == 401
    stolen = {"Cookie": f"{COOKIE_NAME}={value}"}
    assert (await guarded.get("/api/store", headers=stolen)).status == 401  # and a copy is revoked
    assert "You are signed out." in await (await guarded.get("/login?signed_out=1", headers=HTML)).text()


async def test_a_forged_or_foreign_cookie_is_refused(guarded, aiohttp_client, offline: Settings) -> None:
    good = Sessions(TOKEN).issue()
    expires, nonce, signature = good.split(".")
    for value in (f"{int(expires) + 3600}.{nonce}.{signature}", f"{expires}.{nonce}.{'0' * 64}", "garbage",
                  Sessions("another-token").issue(), "a.b.c", "x" * 5000):
        resp = await guarded.get("/api/store", headers={"Cookie": f"{COOKIE_NAME}={value}"})
        assert resp.status == 401, value[:40]
    assert (await guarded.get("/api/store", headers={"Cookie": f"{COOKIE_NAME}={good}"})).status == 200
    # a new API token ends every session issued under the old one
    rotated = await aiohttp_client(create_app(replace(offline, api_token="a-new-token",
                                                      db_path=offline.db_path.with_name("rotated.db"))))
    assert (await rotated.get("/api/store", headers={"Cookie": f"{COOKIE_NAME}={good}"})).status == 401


def test_sessions_expire() -> None:
    sessions = Sessions(TOKEN, max_age_s=60)
    value = sessions.issue(now_s=1000.0)
    assert sessions.valid(value, now_s=1059.0)
    assert not sessions.valid(value, now_s=1060.0)
    assert not Sessions("").valid(value)  # no token, no sessions


async def test_a_cross_site_write_may_not_ride_on_the_cookie(guarded) -> None:
    await _login(guarded)
    body = {"device": "d-1"}
    resp = await guarded.post("/api/customers/1/link", json=body, headers={"Origin": "http://evil.example"})
    assert resp.status == 403
    origin = f"http://{guarded.host}:{guarded.port}"
    assert (await guarded.post("/api/customers/1/link", json=body, headers={"Origin": origin})).status == 201
    proxied = {"Origin": "https://store.example", "X-Forwarded-Host": "store.example"}  # behind a reverse proxy
    assert (await guarded.post("/api/customers/1/link", json=body, headers=proxied)).status == 201
    resp = await guarded.post("/api/customers/1/link", json=body, headers={"Origin": "null"})
    assert resp.status == 403


async def test_the_cookie_is_secure_behind_a_tls_proxy(guarded) -> None:
    resp = await guarded.post("/login", data={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"},
                              allow_redirects=False)
    assert _cookie(resp)[COOKIE_NAME]["secure"] is True


async def test_an_old_page_link_with_the_token_logs_in_once_and_drops_it(guarded) -> None:
    resp = await guarded.get(f"/dashboard?token={TOKEN}&day=2026-03-15", headers=HTML, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard?day=2026-03-15"
    assert COOKIE_NAME in _cookie(resp)
    guarded.session.cookie_jar.clear()
    resp = await guarded.get("/?token=wrong", headers=HTML, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login?")


async def test_without_a_token_there_is_nothing_to_log_in_to(aiohttp_client, offline: Settings) -> None:
    client = await aiohttp_client(create_app(offline))
    resp = await client.get("/login?next=/dashboard", headers=HTML, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard"
    assert (await (await client.get("/api/session")).json())["login_required"] is False


async def test_writes_without_token_only_on_localhost(aiohttp_client, offline: Settings) -> None:
    public = await aiohttp_client(create_app(replace(offline, http_host="0.0.0.0")))
    resp = await public.post("/api/customers/1/link", json={"device": "d-1"})
    assert resp.status == 403
    assert (await public.get("/api/positions")).status == 200  # reads stay open without a token
    local = await aiohttp_client(create_app(replace(offline, http_host="127.0.0.1", db_path=offline.db_path.with_name(
        "local.db"))))
    assert (await local.post("/api/customers/1/link", json={"device": "d-1"})).status == 201


async def test_bad_requests_are_json_400(aiohttp_client, offline: Settings) -> None:
    client = await aiohttp_client(create_app(offline))
    for body in (b"not json", b"[]", b'{"device": 5}', b'{"device": ""}'):
        resp = await client.post("/api/customers/1/link", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 400, body
        assert "error" in await resp.json()
    for query in ("limit=5000", "offset=-1", "limit=abc", "kind=teleport", "since=nan"):
        resp = await client.get(f"/api/events?{query}")
        assert resp.status == 400, query
    resp = await client.delete("/api/positions")
    assert resp.status == 405 and (await resp.json())["status"] == 405


async def test_another_site_cannot_sign_a_browser_out(guarded) -> None:
    await _login(guarded)
    resp = await guarded.post("/logout", headers={"Origin": "http://evil.example"}, allow_redirects=False)
    assert resp.status == 403 and (await resp.json())["status"] == 403
    assert (await guarded.get("/api/store")).status == 200  # still signed in
    origin = f"http://{guarded.host}:{guarded.port}"
    assert (await guarded.post("/logout", headers={"Origin": origin}, allow_redirects=False)).status == 303
    assert (await guarded.get("/api/store")).status == 401
