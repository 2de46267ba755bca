"""API token check, once, as a middleware: area modules need nothing extra.

With ``FLOORWALKER_API_TOKEN`` set, every endpoint except ``/health`` needs
``Authorization: Bearer <token>`` (or ``?token=`` for WebSockets and pages, which browsers
cannot give headers). Without a token, reads are open, and state-changing methods (POST, PUT,
PATCH, DELETE) are refused unless the server listens on the loopback interface only.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

OPEN_PATHS = frozenset({"/health"})
# The map's static assets (plain JS/CSS, no data): an ES module cannot pass a token on to the
# modules it imports, so these are served without one. Pages and APIs still need it.
OPEN_PREFIXES = ("/static/",)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _deny(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="floorwalker"'} if status == 401 else None
    return web.Response(status=status, text=json.dumps({"error": message, "status": status}),
                        content_type="application/json", headers=headers)


def presented_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.query.get("token", "")


def auth_middleware(token: str, *, local_only: bool) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    expected = token.encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or request.path.startswith(OPEN_PREFIXES) or request.method == "OPTIONS":
            return await handler(request)
        if expected:
            if not hmac.compare_digest(presented_token(request).encode(), expected):
                return _deny(401, "a valid API token is required (Authorization: Bearer <token> or ?token=)")
        elif request.method in STATE_CHANGING and not local_only:
            return _deny(403, "state-changing requests need FLOORWALKER_API_TOKEN when the server "
                              "listens beyond localhost")
        return await handler(request)

    return middleware
