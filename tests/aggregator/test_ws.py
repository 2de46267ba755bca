"""WebSockets: coupon frames, batching into arrays, slow clients closed, GOING_AWAY at shutdown."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import aiohttp
from aiohttp import WSCloseCode, web
from aiohttp.test_utils import TestClient, TestServer

from aggregator.app import create_app
from aggregator.appkeys import BUS
from aggregator.events import ShopperEvent
from aggregator.settings import Settings
from tests.aggregator.conftest import wait_until


def offline(settings: Settings) -> Settings:
    return replace(settings, mqtt_enabled=False)


async def test_coupon_frames_are_seed_000_predictions(aiohttp_client, settings: Settings) -> None:
    client = await aiohttp_client(create_app(offline(settings)))
    ws = await client.ws_connect("/ws/coupons")  # subscribed before the handshake is answered
    prediction = {"customer": {"id": "3"}, "coupon": {"department": "Men", "discount": 20}, "ts": 1795435551}
    client.app[BUS].publish(ShopperEvent("move", 1.0, "3"))  # not an offer: not on this socket
    client.app[BUS].publish(ShopperEvent("offer", 2.0, "3", extra={"prediction": prediction, "offer": "offer2"}))
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data) == prediction
    await ws.close()


async def test_movement_frames_are_arrays_and_slow_clients_are_closed(aiohttp_client, settings: Settings) -> None:
    client = await aiohttp_client(create_app(offline(settings)))
    bus = client.app[BUS]
    subscribers_before = len(bus._subs)
    ws = await client.ws_connect("/ws/movement")
    assert len(bus._subs) == subscribers_before + 1  # subscribed before the handshake is answered
    bus.publish(ShopperEvent("enter", 1.0, "v1", "d-1", x=10.0, y=20.0))
    frame = json.loads((await ws.receive(timeout=5)).data)
    assert isinstance(frame, list) and frame[0]["type"] == "enter" and frame[0]["id"] == "v1"
    # A client that stops reading: its queue overflows (events published faster than the loop can
    # hand them over) and the server closes it instead of buffering without bound.
    for i in range(20_000):
        bus.publish(ShopperEvent("move", float(i), "v1", "d-1", x=1.0, y=1.0))
    closed = None
    for _ in range(200):
        msg = await ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            closed = msg
            break
    assert closed is not None and ws.close_code == WSCloseCode.TRY_AGAIN_LATER
    await wait_until(lambda: len(bus._subs) == subscribers_before, timeout_s=5)  # the slow client leaves the bus
    assert len(bus._subs) == subscribers_before


async def test_shutdown_closes_sockets_with_going_away(settings: Settings) -> None:
    app: web.Application = create_app(offline(settings))
    client = TestClient(TestServer(app))
    await client.start_server()
    ws = await client.ws_connect("/ws/movement")  # registered for the shutdown before the handshake
    closer = asyncio.create_task(client.server.close())  # the server stops; the client is still open
    try:
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == WSCloseCode.GOING_AWAY
        await ws.close()
        await closer
    finally:
        await client.close()
