"""Log in once: the login page, ``POST /login``, ``POST /logout`` and ``GET /api/session``.

A browser trades the API token for a session cookie (aggregator/sessions.py) once; from then on
the pages, their fetches and their WebSockets carry the cookie, and no token travels in a URL.
Registered by ``aggregator.api.pages.setup`` (the pages are what need it).
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from string import Template
from typing import Any, Final

from aiohttp import web

from aggregator.appkeys import SETTINGS
from aggregator.auth import authenticate, safe_next, same_origin, see_other, set_session_cookie
from aggregator.http_errors import http_error
from aggregator.sessions import COOKIE_NAME, SESSIONS, Sessions

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MESSAGES: Final = {
    "missing": "Enter the API token (FLOORWALKER_API_TOKEN in /etc/floorwalker/aggregator.env).",
    "wrong": "That is not this aggregator's API token. Check it and try again.",
    "signed_out": "You are signed out.",
    "bad_form": "The login form could not be read; reload the page and try again.",
}
_ERRORS: Final = frozenset({"missing", "wrong", "bad_form"})
WEB_DIR: Final = Path(__file__).resolve().parent.parent / "web"
_PAGE: Final = "login.html"


def render_login(web_dir: Path, next_path: str, message_key: str | None) -> str:
    """The login page with its message and return address, both escaped (no user text is trusted)."""
    template = Template((web_dir / _PAGE).read_text(encoding="utf-8"))
    message = MESSAGES.get(message_key or "", "")
    return template.safe_substitute(
        next=html.escape(safe_next(next_path), quote=True),
        message=html.escape(message),
        message_role="alert" if message_key in _ERRORS else "status",
        message_class="error" if message_key in _ERRORS else "info",
        hidden="" if message else "hidden")


def _page(request: web.Request, next_path: str, message_key: str | None, status: int = 200) -> web.Response:
    return web.Response(status=status, text=render_login(WEB_DIR, next_path, message_key),
                        content_type="text/html", headers={"Cache-Control": "no-store"})


def _sessions(request: web.Request) -> Sessions:
    return request.app[SESSIONS]


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    sessions = _sessions(request)
    next_path = safe_next(request.query.get("next", "/"))
    if not sessions.enabled or sessions.valid(request.cookies.get(COOKIE_NAME, "")):
        return see_other(next_path)  # nothing to log in to, or already in
    return _page(request, next_path, "signed_out" if "signed_out" in request.query else None)


async def _form(request: web.Request) -> tuple[str, str] | None:
    """(token, next) from the form; None when the body is not a form we can read."""
    try:
        form = await request.post()
    except ValueError:
        return None
    token, next_path = form.get("token", ""), form.get("next", "/")
    if not isinstance(token, str) or not isinstance(next_path, str):
        return None  # a file upload where text belongs
    return token.strip(), next_path


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    """Form field ``token`` (and ``next``): 303 to ``next`` with the session cookie, else 401 with the page."""
    sessions = _sessions(request)
    form = await _form(request)
    next_path = safe_next(form[1] if form else "/")
    if not sessions.enabled:
        return see_other(next_path)
    if form is None:
        return _page(request, next_path, "bad_form", status=400)
    if not sessions.token_matches(form[0]):
        log.warning("event=login-failed reason=%s remote=%s", "missing" if not form[0] else "wrong", request.remote)
        return _page(request, next_path, "missing" if not form[0] else "wrong", status=401)
    response = see_other(next_path)
    set_session_cookie(response, request, sessions)
    log.info("event=login via=form remote=%s", request.remote)
    return response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    """Ends this browser's session (also on the server) and returns to the login page."""
    if not same_origin(request):
        raise http_error(403, "a cross-site request may not log you out")
    sessions = _sessions(request)
    sessions.revoke(request.cookies.get(COOKIE_NAME, ""))
    response = see_other("/login?signed_out=1")
    response.del_cookie(COOKIE_NAME, path="/")
    return response


@routes.get("/api/session")
async def session(request: web.Request) -> web.Response:
    """How this request got in, so a page knows whether to offer a logout."""
    sessions = _sessions(request)
    expires = sessions.expires_ts(request.cookies.get(COOKIE_NAME, "")) if sessions.enabled else None
    via = authenticate(request, sessions) if sessions.enabled else "open"
    return web.json_response({"login_required": sessions.enabled, "via": via, "expires_ts": expires})


def setup(app: web.Application) -> None:
    """One session keeper per app, for the auth middleware and these routes alike."""
    app[SESSIONS] = Sessions(app[SETTINGS].api_token)
    app.router.add_routes(routes)


_ERROR = {"$ref": "#/components/schemas/Error"}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/session": {"get": {
        "summary": "how this request was let in: via bearer, cookie (after POST /login), ws-query or open; "
                   "expires_ts of the session cookie",
        "tags": ["map"],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "required": ["login_required", "via", "expires_ts"],
                "properties": {"login_required": {"type": "boolean"},
                               "via": {"type": "string", "enum": ["bearer", "cookie", "ws-query", "open"]},
                               "expires_ts": {"type": ["number", "null"]}}}}}},
            "401": {"description": "an API token is configured and was not presented",
                    "content": {"application/json": {"schema": _ERROR}}}}}},
}
