"""Who may in, decided once, as a middleware: area modules need nothing extra.

With ``FLOORWALKER_API_TOKEN`` set, every endpoint except ``/health``, the login page and the
pages' static assets needs one of

- ``Authorization: Bearer <token>`` (API clients, scripts, Prometheus);
- the session cookie set by ``POST /login`` (browsers: pages, their fetches and WebSockets);
- ``?token=<token>`` on a WebSocket handshake only, kept for consumers that cannot send a header
  or our cookie (a page of another origin, such as seed 000's UI).

A page opened without a session is redirected to the login page; everything else answers a JSON
401. A page link still carrying an old ``?token=`` (bookmarks from before the login page) is
exchanged once for a session and redirected to the same address without the token.

Without a token, reads are open, and state-changing methods (POST, PUT, PATCH, DELETE) are
refused unless the server listens on the loopback interface only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from aggregator.http_errors import error_response
from aggregator.sessions import COOKIE_NAME, SESSIONS, Sessions

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health", "/login", "/logout"})
# The pages' static assets (plain JS/CSS, no data) are open: the login page needs its stylesheet.
OPEN_PREFIXES = ("/static/",)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def _deny(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="floorwalker"'} if status == 401 else None
    return error_response(status, message, headers=headers)


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def is_page_path(request: web.Request) -> bool:
    """A GET of a page or its assets (not an API, not a WebSocket)."""
    return request.method in ("GET", "HEAD") and not request.path.startswith(("/api/", "/ws/"))


def is_page_request(request: web.Request) -> bool:
    """A browser navigating to a page (not a fetch, an API client or a WebSocket)."""
    return is_page_path(request) and "text/html" in request.headers.get("Accept", "")


def safe_next(target: str) -> str:
    """A local path to return to after login; anything else (another host, ``//x``) is ``/``."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def without_token(request: web.Request) -> str:
    query = [(k, v) for k, v in request.query.items() if k != "token"]
    return request.path + (f"?{urlencode(query)}" if query else "")


def see_other(location: str) -> web.Response:
    """A 303 as a plain response (it may carry cookies; raising is for errors)."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def login_redirect(request: web.Request) -> web.Response:
    return see_other(f"/login?{urlencode({'next': safe_next(without_token(request))})}")


def set_session_cookie(response: web.StreamResponse, request: web.Request, sessions: Sessions) -> None:
    """HttpOnly (no script reads it), SameSite=Lax (no cross-site POST carries it), Secure over HTTPS
    (also behind a TLS-terminating proxy that says so; a forged header only makes it stricter)."""
    secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    response.set_cookie(COOKIE_NAME, sessions.issue(), max_age=int(sessions.max_age_s), path="/",
                        httponly=True, samesite="Lax", secure=secure)


def same_origin(request: web.Request) -> bool:
    """A cookie-carrying write must come from our own pages (the browser's Origin header says so).

    Behind a reverse proxy the Host may be the upstream's address: the proxy's X-Forwarded-Host is
    accepted too (a cross-site page cannot set that header without a CORS preflight we never allow)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    ours = {request.host, request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()}
    return urlsplit(origin).netloc in ours - {""}


def authenticate(request: web.Request, sessions: Sessions) -> str | None:
    """How this request proved itself ("bearer", "cookie", "ws-query"), or None."""
    if sessions.token_matches(bearer_token(request)):
        return "bearer"
    if sessions.valid(request.cookies.get(COOKIE_NAME, "")):
        return "cookie"
    if request.headers.get("Upgrade", "").lower() == "websocket" and sessions.token_matches(
            request.query.get("token", "")):
        return "ws-query"
    return None


def auth_middleware(token: str, *, local_only: bool) -> Middleware:
    fallback = Sessions(token)  # used when no route module installed app[SESSIONS]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or request.path.startswith(OPEN_PREFIXES) or request.method == "OPTIONS":
            return await handler(request)
        sessions = request.app.get(SESSIONS) or fallback
        if not sessions.enabled:
            if request.method in STATE_CHANGING and not local_only:
                return _deny(403, "state-changing requests need FLOORWALKER_API_TOKEN when the server "
                                  "listens beyond localhost")
            return await handler(request)
        via = authenticate(request, sessions)
        if via is None:
            return await _refuse(request, sessions)
        if via == "cookie" and request.method in STATE_CHANGING and not same_origin(request):
            return _deny(403, "a cross-site request may not use the session cookie")
        response = await handler(request)
        if is_page_path(request) and "Cache-Control" not in response.headers and not response.prepared:
            # Revalidate every time: a page kept from the cache would open after a sign-out.
            response.headers["Cache-Control"] = "no-cache"
        return response

    return middleware


async def _refuse(request: web.Request, sessions: Sessions) -> web.StreamResponse:
    if is_page_path(request) and sessions.token_matches(request.query.get("token", "")):
        # An old bookmark with the token in it: log in once, then drop the token from the address.
        response = see_other(safe_next(without_token(request)))
        set_session_cookie(response, request, sessions)
        log.info("event=login via=page-link path=%s", request.path)
        return response
    if is_page_request(request):
        return login_redirect(request)
    return _deny(401, "a valid API token is required: Authorization: Bearer <token>, "
                      "or log in at /login for a browser session")
