"""End to end: a mock loyalty shopper walks Women's -> Sport -> Men's and gets the coupon on /ws/coupons.

Real parts all the way: mosquitto, four `floorwalker-agent mock` processes (simulated phone probes
through a pty into the real serial reader, real presence and publishing), the aggregator app
(ingest, fusion, dwell -> browsing), the offer engine, the WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from aggregator.app import create_app
from aggregator.appkeys import CUSTOMERS, INGEST, LINK
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from tests.agent.agentproc import agent_env, start_agent, stop_agent
from tests.agent.helpers import REPO
from tests.aggregator.conftest import wait_until

pytestmark = pytest.mark.broker
DEVICES = REPO / "firmware-config" / "devices"
AGENTS = ("agent-1", "agent-2", "agent-3", "agent-4")
COUPON_TIMEOUT_S = 150.0
# 4 s per scenario point: a focus pin lingers 5 points = 20 s, long enough for a few probe bursts to
# reach several sniffers and for fusion to settle inside the zone. At 2 s (10 s linger) the fused
# track lags the path and the Sport stop was never detected: four sniffers over 36 x 26 m are sparse.
STEP_S = 4


async def test_mock_loyalty_shopper_on_the_qualifying_path_gets_the_coupon(
        aiohttp_client, settings: Settings, mqtt_broker: Broker, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(settings))
    app = client.app
    await wait_until(lambda: app[LINK].subscribed)
    cid = next(cid for cid, c in app[CUSTOMERS].items() if c.get("gender") == "F" and 25 <= int(c["age"]) <= 35)
    env = agent_env(mqtt_broker.port, FLOORWALKER_STATE_DIR=str(tmp_path / "var"), LOG_LEVEL="INFO")
    env.pop("FLOORWALKER_STORE_SECRET")  # the demo store file's secret, as the aggregator's
    procs = [start_agent("mock", "--config", str(DEVICES / f"{a}.toml"), "--seed", "3", "--shoppers", "1",
                         "--loyalty-share", "0", env=env, stderr_path=tmp_path / f"{a}.log") for a in AGENTS]
    ws = None
    frame = None
    try:
        # the agents connect, subscribe to the scenario topic, then announce themselves online (the broker
        # handles one connection's packets in order, agent/publisher.py): online here means subscribed. On a
        # loaded machine starting four agents takes over a minute, and a scenario published before then is lost
        ingest = app[INGEST]
        await wait_until(lambda: all(a in ingest.agents and ingest.agents[a].state == "online" for a in AGENTS),
                         timeout_s=120.0)
        ws = await client.ws_connect("/ws/coupons")
        pins = [{"type": "focus", "x": 555, "y": 660}, {"type": "focus", "x": 900, "y": 1140},
                {"type": "focus", "x": 1000, "y": 770}]
        resp = await client.post("/api/new_scenario", json={"customer_id": cid, "step_s": STEP_S, "pins": pins})
        assert resp.status == 202, await resp.text()
        deadline = time.monotonic() + COUPON_TIMEOUT_S
        while frame is None or frame["customer"]["id"] != cid:
            msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            frame = json.loads(msg.data)
    finally:
        if ws is not None:
            await ws.close()
        codes = [await asyncio.to_thread(stop_agent, p) for p in procs]
    assert codes == [0, 0, 0, 0], [(tmp_path / f"{a}.log").read_text()[-1500:] for a in AGENTS]
    assert frame["offer"] == "offer2" and frame["coupon"]["department"] == "Men"
    log = [r["line"] for r in (await (await client.get("/api/offers/log")).json())["items"]]
    assert f"[User {cid} triggered offer offer2]" in log
    assert f"[User {cid} entered state shoes_visited][Event: clicked Sport][Category: shoes]" in log
