"""Offers inside the real application: a browsing event on the bus fires a coupon that reaches
/ws/coupons, /api/offers, /api/offers/log and the MQTT prediction topic of the real broker."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pytest

from agent.contract import shopper_topic
from aggregator.app import create_app
from aggregator.appkeys import BUS, LINK
from aggregator.embedded_broker import Broker
from aggregator.events import ShopperEvent
from aggregator.settings import Settings
from tests.aggregator.conftest import wait_until
from tests.mqtt_helpers import Collector, publish

pytestmark = pytest.mark.broker

# customers.json: customer 5 is checked below to be a woman of 25-35.
ZONES = {"Women's": ("clothing", "Women", 550, 600), "Sport": ("sport", "Sport", 900, 1100),
         "Men's": ("clothing", "Men", 900, 750)}


def browsing(customer_id: str, zone: str, ts: float) -> ShopperEvent:
    category, dep, x, y = ZONES[zone]
    return ShopperEvent("browsing", ts, visitor=customer_id, device="dev-" + customer_id, customer_id=customer_id,
                        x=x, y=y, zone=zone, dep=dep, category=category, state="browsing")


def qualifying_customer(app) -> str:  # type: ignore[no-untyped-def]
    from aggregator.appkeys import CUSTOMERS

    for cid, c in app[CUSTOMERS].items():
        if c.get("gender") == "F" and 25 <= int(c.get("age", 0)) <= 35:
            return cid
    raise AssertionError("customers.json has no woman of 25-35")


async def test_a_qualifying_path_fires_a_coupon_everywhere(aiohttp_client, settings: Settings,
                                                           mqtt_broker: Broker) -> None:
    client = await aiohttp_client(create_app(settings))
    app = client.app
    await wait_until(lambda: app[LINK].connected)
    cid = qualifying_customer(app)
    with Collector(mqtt_broker.host, mqtt_broker.port, settings.topics.prediction) as predictions:
        ws = await client.ws_connect("/ws/coupons")  # the handler subscribes before it answers the handshake
        try:
            t = time.time()
            for i, zone in enumerate(["Women's", "Sport", "Men's"]):
                app[BUS].publish(browsing(cid, zone, t + i * 60))
            frame = json.loads((await ws.receive(timeout=5)).data)
        finally:
            await ws.close()
        assert frame["customer"] == {"id": cid} and frame["offer"] == "offer2"
        assert frame["coupon"]["department"] == "Men" and frame["ts"] == int(t + 120)
        (msg,) = await asyncio.to_thread(predictions.wait_for, 1)
        # customer/prediction carries what the retail demo's services parse: the customer's integer id
        assert json.loads(msg.payload) == {**frame, "customer": {"id": int(cid)}}
    body = await (await client.get("/api/offers")).json()
    assert [(o["customer_id"], o["offer"], o["department"]) for o in body["items"]] == [(cid, "offer2", "Men")]
    assert body["items"][0]["prediction"] == frame
    log = (await (await client.get("/api/offers/log")).json())["items"]
    assert [r["line"] for r in log] == [
        f"[User {cid} entered state clothes_visited][Event: clicked Women's][Category: clothing]",
        f"[User {cid} entered state shoes_visited][Event: clicked Sport][Category: shoes]",
        f"[User {cid} entered state offer][Event: clicked Men's][Category: clothing]",
        f"[User {cid} triggered offer offer2]",
    ]
    stats = await (await client.get("/api/offers/stats")).json()
    assert stats["offers"] == 1 and stats["shoppers"] == 0


async def test_anonymous_shoppers_and_same_zone_paths_get_nothing(aiohttp_client, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    app = client.app
    cid = qualifying_customer(app)
    t = time.time()
    events = [browsing(cid, z, t + i) for i, z in enumerate(["Women's", "Sport", "Women's"])]  # same item
    anon = [replace(browsing("x", z, t + i), customer_id=None, visitor="hash-1")
            for i, z in enumerate(["Women's", "Sport", "Men's"])]
    for e in events + anon:
        app[BUS].publish(e)
    await wait_until(lambda: app_stats(app)["rows"] >= 6)
    assert app_stats(app)["offers"] == 0 and app_stats(app)["ignored"] == 3
    assert (await (await client.get("/api/offers")).json())["items"] == []
    assert (await client.get("/api/offers?limit=0")).status == 400


def app_stats(app) -> dict:  # type: ignore[no-untyped-def,type-arg]
    from aggregator.api.offers import OFFERS

    return dict(app[OFFERS].service.counts())


async def test_a_sequence_in_progress_survives_a_restart(aiohttp_client, settings: Settings) -> None:
    settings = replace(settings, mqtt_enabled=False)
    first = await aiohttp_client(create_app(settings))
    cid = qualifying_customer(first.app)
    t = time.time()
    first.app[BUS].publish(browsing(cid, "Women's", t))
    first.app[BUS].publish(browsing(cid, "Sport", t + 30))
    await wait_until(lambda: app_stats(first.app)["transitions"] >= 2)
    await first.close()
    second = await aiohttp_client(create_app(settings))
    second.app[BUS].publish(browsing(cid, "Men's", t + 60))
    await wait_until(lambda: app_stats(second.app)["offers"] >= 1)


async def test_seed_001_click_stream_on_mqtt_fires_offers(aiohttp_client, settings: Settings,
                                                         mqtt_broker: Broker) -> None:
    client = await aiohttp_client(create_app(settings))
    app = client.app
    from aggregator.api.offers import OFFERS

    rt = app[OFFERS]
    # the click subscription acknowledged by the broker (not retained: a row published before is lost)
    await wait_until(lambda: rt.link is not None and rt.link.subscribed and app[LINK].connected)
    ns = 1_000_000_000
    t0 = int(time.time()) * ns
    rows = [{"timestamp": t0 + i * ns, "userId": "web-user", "productId": p, "category": c, "gender": "M",
             "age": 40} for i, (p, c) in enumerate([("P1", "clothing"), ("S1", "shoes"), ("P2", "clothing")])]
    items = [(rt.click_topic, json.dumps(r).encode()) for r in rows]
    items.insert(1, (rt.click_topic, b"not json"))
    # a web-shop user who is no loyalty customer: the demo could not look the id up, so the prediction goes
    # to the store's own shopper topic (docs/MQTT.md), and customer/prediction hears nothing of it
    with Collector(mqtt_broker.host, mqtt_broker.port, shopper_topic("demo", "prediction"),
                   settings.topics.prediction) as predictions:
        await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, items)
        (msg,) = await asyncio.to_thread(predictions.wait_for, 1)
    assert msg.topic == shopper_topic("demo", "prediction")
    prediction = json.loads(msg.payload)
    assert prediction["customer"] == {"id": "web-user"} and prediction["offer"] == "offer1"
    assert prediction["coupon"]["department"] == "Men"  # no zone: the gender fallback
    assert app_stats(app)["offers"] == 1 and rt.bad_rows == 1
