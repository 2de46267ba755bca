"""End to end through a real mosquitto: agent tier -> aggregator -> SQLite -> customer tier and WebSocket."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from agent.contract import agent_topic, decode_customer
from aggregator.app import create_app
from aggregator.appkeys import INGEST, LINK, STORE
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from tests.aggregator import agents
from tests.aggregator.conftest import wait_until
from tests.mqtt_helpers import Collector, publish

pytestmark = pytest.mark.broker


def rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:  # type: ignore[type-arg]
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def started(aiohttp_client, settings: Settings):  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(settings))
    link = client.app[LINK]
    await wait_until(lambda: link.subscribed)
    return client


async def test_visit_flows_to_sqlite_customer_tier_and_websocket(aiohttp_client, settings: Settings,
                                                                  mqtt_broker: Broker) -> None:
    client = await started(aiohttp_client, settings)
    frames: list[list[dict]] = []  # type: ignore[type-arg]
    ws = await client.ws_connect("/ws/movement")

    async def read_ws() -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                frames.append(json.loads(msg.data))

    reader = asyncio.create_task(read_ws())
    t0 = time.time() - 60
    traffic = agents.visit("d-shopper-1", t0, step_s=1.0)
    traffic += [agents.door("agent-1", 900, t0, "in"), agents.motion("agent-1", 901, t0 + 1, "Women's", True)]
    # an anonymous shopper: the customer tier's shapes on the store's shopper topics (docs/MQTT.md)
    with Collector(mqtt_broker.host, mqtt_broker.port, "floorwalker/demo/shopper/#", "customer/#") as collector:
        await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, traffic)
        ingest = client.app[INGEST]
        await wait_until(lambda: ingest.counters.acked >= len(traffic))
        got = await asyncio.to_thread(collector.wait_for, 3)
        await wait_until(lambda: any(m.topic == "floorwalker/demo/shopper/exit" for m in collector.messages))
        kinds = [m.topic.split("/")[-1] for m in collector.messages]
        assert all(m.topic.startswith("floorwalker/demo/shopper/") for m in collector.messages)
    assert kinds[0] == "enter" and kinds[-1] == "exit"
    assert "browsing" in kinds and "move" in kinds
    browsing = next(m for m in collector.messages if m.topic == "floorwalker/demo/shopper/browsing")
    event = decode_customer("browsing", browsing.payload)
    assert event.id == "d-shopper-1" and event.dep == "Women"
    raw = json.loads(browsing.payload)
    assert isinstance(raw["ts"], int) and isinstance(raw["x"], int) and isinstance(raw["y"], int)
    assert 445 <= raw["x"] <= 666 and 443 <= raw["y"] <= 879, raw  # fused into the Women's zone
    assert got  # collector saw traffic

    db = settings.db_path
    assert rows(db, "SELECT COUNT(*) FROM messages")[0][0] == len(traffic)
    visits = rows(db, "SELECT visitor, start_ts, end_ts, passerby, seq FROM visits")
    assert len(visits) == 1  # four agents' enter/exit merged into one store visit
    visitor, start, end, passerby, seq = visits[0]
    assert visitor == "d-shopper-1" and end is not None and end - start == pytest.approx(8.0, abs=0.1)
    assert passerby == 0  # 8 s >= the test's 5 s passer-by threshold
    assert seq > 1
    # one fused position per device per slice of messages: at least one, at most one per report
    assert 1 <= rows(db, "SELECT COUNT(*) FROM sightings WHERE visitor = 'd-shopper-1'")[0][0] <= 32
    assert rows(db, "SELECT COUNT(*) FROM door_events")[0][0] == 1
    assert rows(db, "SELECT COUNT(*) FROM motion_events")[0][0] == 1
    stored_kinds = [r[0] for r in rows(db, "SELECT kind FROM customer_events ORDER BY id")]
    assert stored_kinds == kinds

    await wait_until(lambda: any(e["type"] == "exit" for f in frames for e in f))
    ws_kinds = [e["type"] for f in frames for e in f]
    assert {"enter", "move", "browsing", "exit", "door", "motion"} <= set(ws_kinds)
    assert all(isinstance(f, list) for f in frames)
    await ws.close()
    await reader

    resp = await client.get("/api/customers/d-shopper-1/track?limit=3")
    body = await resp.json()
    assert resp.status == 200 and len(body["items"]) == 3
    resp = await client.get("/api/events?kind=browsing")
    assert [e["kind"] for e in (await resp.json())["items"]] == ["browsing"]


async def test_hostile_payloads_are_dead_lettered_and_service_keeps_going(aiohttp_client, settings: Settings,
                                                                           mqtt_broker: Broker) -> None:
    client = await started(aiohttp_client, settings)
    t = time.time()
    good_topic, good = agents.presence("enter", "agent-1", 1, t, "d-good", 550, 600)
    hostile = [
        (good_topic, b"\xff\xfe not json"),
        (good_topic, b"[1, 2, 3]"),
        (good_topic, b'{"msg_id": "x", "agent": "agent-1", "ts": "soon"}'),
        (good_topic, b"{" * 100_000),
        (good_topic, json.dumps({"msg_id": "agent-1:9", "agent": "agent-2", "ts": t}).encode()),
        (agent_topic("demo", "agent-1", "door"), b'{"msg_id": "a:1", "agent": "agent-1", "ts": 1e400}'),
        ("floorwalker/demo/agents/agent-1/health", b'{"nested": ' * 5000 + b"1" + b"}" * 5000),
        (good_topic, json.dumps({"msg_id": "agent-1:7", "agent": "agent-1", "ts": t, "device": "AA:BB:CC:DD:EE:FF",
                                 "x": 1, "y": 1, "accuracy_m": 1, "rssi_dbm": -50, "distance_m": 1}).encode()),
        (good_topic, b""),
    ]
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, [*hostile, (good_topic, good)])
    ingest = client.app[INGEST]
    await wait_until(lambda: ingest.counters.acked >= len(hostile) + 1)
    dead = rows(settings.db_path, "SELECT reason, payload FROM dead_letters ORDER BY id")
    assert len(dead) == len(hostile)
    reasons = {r for r, _ in dead}
    assert {"not-json", "not-object", "too-large", "agent-mismatch", "raw-mac"} <= reasons
    assert all(b"AA:BB" not in (p or b"") for _, p in dead)  # a raw MAC never reaches the disk
    assert rows(settings.db_path, "SELECT device FROM messages") == [("d-good",)]
    metrics = await (await client.get("/metrics")).text()
    assert 'floorwalker_messages_rejected_total{reason="raw-mac"} 1' in metrics
    assert (await client.get("/health")).status == 200


async def test_duplicates_are_stored_once_and_links_rename_the_shopper(aiohttp_client, settings: Settings,
                                                                        mqtt_broker: Broker) -> None:
    client = await started(aiohttp_client, settings)
    t = time.time()
    first = agents.presence("enter", "agent-1", 1, t, "d-loyal", 550, 600)
    traffic = [agents.link("agent-1", 0, t, "d-loyal", "7"), first, first, first,
               agents.presence("move", "agent-1", 2, t + 1, "d-loyal", 560, 610)]
    with Collector(mqtt_broker.host, mqtt_broker.port, "customer/enter") as collector:
        await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, traffic)
        ingest = client.app[INGEST]
        await wait_until(lambda: ingest.counters.acked >= len(traffic))
        await asyncio.to_thread(collector.wait_for, 1)
    assert json.loads(collector.messages[0].payload)["id"] == 7  # a known customer: an integer, as the demo wants
    assert rows(settings.db_path, "SELECT COUNT(*) FROM messages")[0][0] == 3
    assert ingest.counters.duplicates == 2
    resp = await client.get("/api/customers?limit=10")
    customers = {str(c["customer_id"]): c for c in (await resp.json())["items"]}
    assert customers["7"]["state"]["visitor"] == "7"
    occupancy = await (await client.get("/api/zones/occupancy")).json()
    assert occupancy["total"] == 1


async def test_the_writer_dying_costs_nothing_and_acknowledgements_find_the_mqtt_process_again(
        aiohttp_client, settings: Settings, mqtt_broker: Broker) -> None:
    """SIGKILL the SQLite writer, which acknowledges straight to the MQTT process: a new writer
    takes the unconfirmed batches and the acknowledgement socket, every message is stored and
    acknowledged once the new writer commits it (the broker holds nothing for us afterwards)."""
    client = await started(aiohttp_client, settings)
    store, ingest = client.app[STORE], client.app[INGEST]
    loop = asyncio.get_running_loop()
    first = agents.visit("d-w-before", time.time() - 30, seq0=0)
    await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port, first)
    await wait_until(lambda: ingest.counters.acked == len(first))
    writer = store.writer_pid
    assert writer is not None
    os.kill(writer, signal.SIGKILL)
    second = agents.visit("d-w-after", time.time() - 20, seq0=len(first))
    await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port, second)
    total = len(first) + len(second)
    await wait_until(lambda: ingest.counters.acked == total, timeout_s=20)
    assert store.writer_pid not in (None, writer)
    assert len(rows(settings.db_path, "SELECT msg_id FROM messages")) == total
    metrics = await (await client.get("/metrics")).text()
    assert "floorwalker_store_errors_total 1" in metrics
    link = client.app[LINK]
    received = link.received
    await client.close()  # the MQTT process disconnects; what it had not acknowledged would come again
    again = await aiohttp_client(create_app(settings))
    await wait_until(lambda: again.app[LINK].subscribed)
    sentinel = agents.visit("d-w-sentinel", time.time() - 10, seq0=total)[:1]  # after anything held back
    await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port, sentinel)
    sentinel_id = json.loads(sentinel[0][1])["msg_id"]
    await wait_until(lambda: rows(settings.db_path, "SELECT 1 FROM messages WHERE msg_id = ?", (sentinel_id,)))
    redelivered = again.app[INGEST].counters.received - 1  # what came before the sentinel
    assert redelivered == 0, f"{redelivered} of {received} redelivered: acknowledgements were lost"


async def test_the_mqtt_process_dying_costs_nothing_and_is_counted(aiohttp_client, settings: Settings,
                                                                    mqtt_broker: Broker) -> None:
    """SIGKILL the aggregator's MQTT connection process: a new one takes over, every message is stored."""
    client = await started(aiohttp_client, settings)
    link = client.app[LINK]
    loop = asyncio.get_running_loop()
    first = agents.visit("d-before", time.time() - 30, seq0=0)
    await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port, first)
    await wait_until(lambda: len(rows(settings.db_path, "SELECT msg_id FROM messages")) == len(first))
    os.kill(link.pid, signal.SIGKILL)
    second = agents.visit("d-after", time.time() - 20, seq0=len(first))
    await loop.run_in_executor(None, publish, mqtt_broker.host, mqtt_broker.port, second)
    await wait_until(lambda: len(rows(settings.db_path, "SELECT msg_id FROM messages")) == len(first) + len(second),
                     timeout_s=20)
    metrics = await (await client.get("/metrics")).text()
    assert "floorwalker_mqtt_process_restarts_total 1" in metrics
    await wait_until(lambda: link.connected and link.subscribed)
    assert (await client.get("/health")).status == 200
