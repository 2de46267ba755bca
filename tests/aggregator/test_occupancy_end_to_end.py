"""End to end: four mock agents whose phones randomise -> a real broker -> the aggregator -> /api/occupancy.

The simulated store opens a few seconds after the agents start (``--opens-at``), so the door counter
starts right, as in a real store; agent-1 writes the truth (people in the store, every second). The
estimate must follow the truth within :data:`TOLERANCE` people for :data:`HOLD_POLLS` polls in a row.
An agent reports a device's exit only after ``absence_s`` (180 s) of silence, so the truth an estimate
at ``t`` can be held to is any value the store had in ``[t - ABSENCE_S, t]``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from aggregator.app import create_app
from aggregator.appkeys import LINK
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from tests.agent.agentproc import agent_env, start_agent, stop_agent
from tests.agent.helpers import REPO
from tests.aggregator.conftest import wait_until

pytestmark = pytest.mark.broker
DEVICES = REPO / "firmware-config" / "devices"
AGENTS = ("agent-1", "agent-2", "agent-3", "agent-4")
TOLERANCE = 2.0  # people
ABSENCE_S = 180.0  # the device files' absence_s
HOLD_POLLS = 5
POLL_S = 2.0
TIMEOUT_S = 240.0
FILLED = 10  # people in the store (of ~20 at --shoppers 30) before the estimate is held to the truth


def _truth(path: Path) -> list[tuple[float, int]]:
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # the line being written
            continue
        if row.get("kind") == "occupancy":
            rows.append((row["ts"], row["people"]))
    return rows


def _within(estimate: float, truth: list[tuple[float, int]], ts: float) -> bool:
    recent = [people for t, people in truth if ts - ABSENCE_S <= t <= ts]
    return bool(recent) and min(recent) - TOLERANCE <= estimate <= max(recent) + TOLERANCE


async def test_live_estimate_follows_the_mock_truth(aiohttp_client, settings: Settings, mqtt_broker: Broker,
                                                    tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(settings))
    await wait_until(lambda: client.app[LINK].subscribed)
    env = agent_env(mqtt_broker.port, FLOORWALKER_STATE_DIR=str(tmp_path / "var"), LOG_LEVEL="INFO")
    env.pop("FLOORWALKER_STORE_SECRET")  # the demo store file's secret, as the aggregator's
    opens = f"{time.time() + 5:.3f}"
    truth_file = tmp_path / "truth.jsonl"
    procs = [start_agent("mock", "--config", str(DEVICES / f"{a}.toml"), "--seed", "11", "--shoppers", "30",
                         "--randomized-share", "0.4", "--opens-at", opens,
                         *(("--truth", str(truth_file)) if a == "agent-1" else ()),
                         env=env, stderr_path=tmp_path / f"{a}.log") for a in AGENTS]
    seen: list[tuple[float, float, int]] = []
    try:
        held, deadline = 0, time.monotonic() + TIMEOUT_S
        while held < HOLD_POLLS:
            assert time.monotonic() < deadline, f"estimate never held the truth: {seen[-10:]}"
            await asyncio.sleep(POLL_S)  # the poll interval of a dashboard, not a wait for a result
            body = await (await client.get("/api/occupancy")).json()
            truth = _truth(truth_file) if truth_file.exists() else []
            if not truth or truth[-1][1] < FILLED:  # wait until the store has filled
                continue
            seen.append((round(body["estimate"], 1), truth[-1][1], body["evidence"]["devices"]))
            held = held + 1 if _within(body["estimate"], truth, body["ts"]) else 0
    finally:
        codes = [await asyncio.to_thread(stop_agent, p) for p in procs]
    assert codes == [0, 0, 0, 0], [(tmp_path / f"{a}.log").read_text()[-1500:] for a in AGENTS]
