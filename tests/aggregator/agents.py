"""Agent-tier traffic for aggregator tests, built with the contract as a real agent would."""

from __future__ import annotations

import math

from agent.config import load_deployment
from agent.contract import Door, Link, Motion, Presence, Range, agent_topic, encode_agent
from agent.positioning.calibration import LogDistanceModel
from agent.positioning.grid_filter import PHONE_HEIGHT_M
from tests.conftest import CONFIG_DIR

STORE = "demo"
_DEVICES = {d.agent_id: d for d in load_deployment(CONFIG_DIR)}
MPP = next(iter(_DEVICES.values())).store.plan.metres_per_px
# each sniffer's calibrated path loss: the RSSI a phone at a spot would give it, as the aggregator's
# grid filter expects (it weighs the RSSI, not the distance the agent made of it)
_MODELS = {(d.agent_id, s.id): LogDistanceModel.fit(s.calibration) for d in _DEVICES.values() for s in d.sniffers}


def presence(kind: str, agent: str, seq: int, ts: float, device: str, x: float, y: float) -> tuple[str, bytes]:
    """A report of ``device`` truly at plan (x, y), with exact ranges from each of the agent's sniffers:
    the distance, and the RSSI the sniffer's calibration gives at that distance (no noise)."""
    ranges = []
    for s in _DEVICES[agent].sniffers:
        sx, sy = s.position_px
        d = max(0.1, math.hypot(x - sx, y - sy) * MPP)
        rssi = round(_MODELS[(agent, s.id)].rssi_at(math.hypot(d, s.height_m - PHONE_HEIGHT_M)), 1)
        ranges.append(Range(s.id, sx, sy, rssi, d))
    msg = Presence(kind, f"{agent}:{seq}", agent, ts, device, x, y, 2.0, ranges[0].rssi_dbm, ranges[0].distance_m,
                   False, tuple(ranges))
    return agent_topic(STORE, agent, kind), encode_agent(msg)


def link(agent: str, seq: int, ts: float, device: str, customer_id: str) -> tuple[str, bytes]:
    return agent_topic(STORE, agent, "link"), encode_agent(Link(f"{agent}:{seq}", agent, ts, device, customer_id))


def door(agent: str, seq: int, ts: float, direction: str) -> tuple[str, bytes]:
    return agent_topic(STORE, agent, "door"), encode_agent(Door(f"{agent}:{seq}", agent, ts, "door-main", direction))


def motion(agent: str, seq: int, ts: float, zone: str, active: bool) -> tuple[str, bytes]:
    return agent_topic(STORE, agent, "motion"), encode_agent(Motion(f"{agent}:{seq}", agent, ts, "pir-1", zone, active))


ALL_AGENTS = ("agent-1", "agent-2", "agent-3", "agent-4")


def visit(device: str, t0: float, *, seq0: int = 0, agents: tuple[str, ...] = ALL_AGENTS,
          path: list[tuple[float, float]] | None = None, step_s: float = 1.0) -> list[tuple[str, bytes]]:
    """One shopper's whole visit as every agent reports it: enter, moves along ``path``, exit."""
    path = path or [(550.0, 600.0)] * 8
    out: list[tuple[str, bytes]] = []
    seq = seq0
    for i, (x, y) in enumerate(path):
        kind = "enter" if i == 0 else "move"
        for agent in agents:
            seq += 1
            out.append(presence(kind, agent, seq, t0 + i * step_s + 0.01 * agents.index(agent), device, x, y))
    last = t0 + len(path) * step_s
    for agent in agents:
        seq += 1
        out.append(presence("exit", agent, seq, last, device, *path[-1]))
    return out
