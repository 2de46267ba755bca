"""WebSockets ``/ws/movement`` and ``/ws/coupons`` (seed 000's names).

``/ws/movement``: each text frame is a JSON array of every bus event queued since the last frame
(no timer: sent as soon as the loop is free). ``/ws/coupons``: one frame per offer, the seed-000
prediction object. A client too slow to keep up (its queue overflowed, or a send stalls) is closed
instead of slowing anyone else; on shutdown every socket is closed with GOING_AWAY.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref

from aiohttp import WSCloseCode, WSMsgType, web

from aggregator.appkeys import BUS
from aggregator.bus import Subscription

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

SOCKETS = web.AppKey("websockets", weakref.WeakSet[web.WebSocketResponse])
QUEUE_MAX = 5000  # events waiting for one client before it counts as too slow
SEND_TIMEOUT_S = 5.0
MOVEMENT_KINDS = ("enter", "move", "exit", "browsing", "offer", "agent", "door", "motion")


async def _serve(request: web.Request, sub: Subscription, frame: callable) -> web.WebSocketResponse:  # type: ignore[valid-type]
    ws = web.WebSocketResponse(heartbeat=30.0)
    # Known to the shutdown (and subscribed, by the caller) before the handshake is answered, so a
    # client that has connected misses no event and is closed with GOING_AWAY.
    request.app[SOCKETS].add(ws)
    await ws.prepare(request)
    sender = asyncio.create_task(_pump(ws, sub, frame))
    try:
        async for msg in ws:  # clients only ever close; anything else is ignored
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        sub.close()
        if not ws.closed:
            await ws.close()
    return ws


async def _pump(ws: web.WebSocketResponse, sub: Subscription, frame: callable) -> None:  # type: ignore[valid-type]
    try:
        while not ws.closed:
            first = await sub.get()
            if sub.dropped:
                log.warning("event=ws-slow-client-closed dropped=%d", sub.dropped)
                await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
                return
            events = [first, *sub.get_nowait_all()]
            for text in frame(events):
                await asyncio.wait_for(ws.send_str(text), SEND_TIMEOUT_S)
    except (TimeoutError, ConnectionResetError) as exc:
        log.warning("event=ws-send-failed error=%r", exc)
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"send stalled")


def _movement_frames(events: list) -> list[str]:  # type: ignore[type-arg]
    return [json.dumps([e.to_dict() for e in events], separators=(",", ":"), ensure_ascii=False)]


def _coupon_frames(events: list) -> list[str]:  # type: ignore[type-arg]
    return [json.dumps(e.extra["prediction"], separators=(",", ":"), ensure_ascii=False)
            for e in events if isinstance(e.extra.get("prediction"), dict)]


@routes.get("/ws/movement")
async def movement(request: web.Request) -> web.WebSocketResponse:
    """Live shopper events for the map: frames are JSON arrays of events."""
    sub = request.app[BUS].subscribe(MOVEMENT_KINDS, maxsize=QUEUE_MAX)
    return await _serve(request, sub, _movement_frames)


@routes.get("/ws/coupons")
async def coupons(request: web.Request) -> web.WebSocketResponse:
    """Offers as they fire: one seed-000 prediction object per frame."""
    sub = request.app[BUS].subscribe(("offer",), maxsize=QUEUE_MAX)
    return await _serve(request, sub, _coupon_frames)


async def _close_all(app: web.Application) -> None:
    for ws in list(app[SOCKETS]):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def setup(app: web.Application) -> None:
    app[SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(_close_all)
