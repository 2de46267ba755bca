"""One JSON shape for every HTTP error the aggregator (and ``floorwalker-chain serve``) answers.

    {"error": "limit must be between 1 and 1000, got 0", "status": 400, "param": "limit"}

``error`` says what is wrong in words a store technician understands, ``status`` repeats the HTTP
status, and ``param`` (only when one part of the request is to blame) names the query parameter or
body field: ``limit``, ``body``, ``pins[2].x``. docs/API.md documents it; the OpenAPI ``Error``
schema is :data:`ERROR_SCHEMA`.

Views raise :func:`http_error` (or :func:`bad_request`, :func:`not_found`); middlewares, which
return rather than raise, use :func:`error_response`. :func:`error_middleware` gives every other
``HTTPException`` (aiohttp's own 404 and 405, a body too large, a plain ``HTTPForbidden``) and
every bug (500) the same shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error", "status"],
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"},
                   "param": {"type": "string", "description": "the query parameter or body field to blame"}}}
# The statuses views raise (a 405 comes from aiohttp's router; a 413 from reading a body too big).
_EXCEPTIONS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 404: web.HTTPNotFound,
    409: web.HTTPConflict, 503: web.HTTPServiceUnavailable}
# Headers of an aiohttp exception worth keeping when its body is replaced by ours.
_KEPT_HEADERS = ("allow", "www-authenticate", "retry-after")


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """The error document: ``{"error", "status"}`` and ``param`` when given."""
    body: dict[str, Any] = {"error": message, "status": status}
    if param is not None:
        body["param"] = param
    return body


def http_error(status: int, message: str, *, param: str | None = None,
               headers: Mapping[str, str] | None = None) -> web.HTTPException:
    """An exception to raise from a view: the aiohttp class of ``status``, with our JSON body."""
    cls = _EXCEPTIONS.get(status)
    if cls is None:
        raise ValueError(f"no HTTP error class for status {status}")
    return cls(text=json.dumps(error_body(status, message, param)), content_type="application/json",
               headers=headers)


def error_response(status: int, message: str, *, param: str | None = None,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    """The same document as a response (for middlewares, which return instead of raising)."""
    return web.Response(status=status, text=json.dumps(error_body(status, message, param)),
                        content_type="application/json", headers=headers)


def bad_request(param: str, message: str) -> web.HTTPException:
    """400 blaming one query parameter or body field."""
    return http_error(400, message, param=param)


def not_found(message: str) -> web.HTTPException:
    return http_error(404, message)


def _is_ours(exc: web.HTTPException) -> bool:
    if exc.content_type != "application/json" or not exc.text:
        return False
    try:
        body = json.loads(exc.text)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("status") == exc.status and isinstance(body.get("error"), str)


def _message(exc: web.HTTPException) -> str:
    """A view's own plain text, else the reason (aiohttp's default text is just "404: Not Found")."""
    text = exc.text or ""
    if exc.content_type == "text/plain" and text and not text.startswith(f"{exc.status}:"):
        return text
    return exc.reason


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is JSON in the one shape with a proper status code; a bug is a 500, never a crash."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or _is_ours(exc):
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in _KEPT_HEADERS}
        return error_response(exc.status, _message(exc), headers=headers)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("event=handler-error method=%s path=%s", request.method, request.path)
        return error_response(500, "internal server error")
