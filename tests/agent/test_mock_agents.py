"""Two mock agents with the same seed against a real broker: the same shoppers, heard by both."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent import contract
from aggregator.embedded_broker import Broker
from tests.agent.agentproc import agent_env, start_agent, stop_agent
from tests.agent.helpers import REPO, DurableCollector
from tests.mqtt_helpers import publish

pytestmark = pytest.mark.broker
DEVICES = REPO / "firmware-config" / "devices"


def _enters(collector: DurableCollector) -> dict[str, set[str]]:
    return {a: {p["device"] for p in collector.payloads("/enter") if p["agent"] == a} for a in ("agent-1", "agent-2")}


def _heard_enough(collector: DurableCollector, truth: Path) -> bool:
    """What the assertions below need: three shoppers each, one heard by both, the scenario's link,
    and the ground truth (written once a second) caught up: every device agent-1 reported, the
    scenario's shopper."""
    enters = _enters(collector)
    if not (len(enters["agent-1"]) >= 3 and len(enters["agent-2"]) >= 3 and enters["agent-1"] & enters["agent-2"]
            and any(p["customer_id"] == "2" for p in collector.payloads("/link"))):
        return False
    rows = [row for line in (truth.read_text().splitlines() if truth.exists() else [])[:-1]
            if (row := json.loads(line))["kind"] in ("shopper", "staff")]  # not the people-count rows
    known = {row["device"] for row in rows}  # (the last line may be half written)
    return enters["agent-1"] <= known and any(row["shopper"].startswith("scenario-2-") for row in rows)


def test_same_seed_agents_hear_the_same_shoppers_and_play_scenarios(tmp_path: Path, mqtt_broker: Broker) -> None:
    collector = DurableCollector(mqtt_broker.host, mqtt_broker.port, "floorwalker/demo/agents/#")
    env = agent_env(mqtt_broker.port, FLOORWALKER_STATE_DIR=str(tmp_path / "var"), LOG_LEVEL="INFO")
    env.pop("FLOORWALKER_STORE_SECRET")  # mock accepts the demo's CHANGE-ME secret
    # fixed addresses only, nothing next door: so every device reported can be found in the truth
    procs = [start_agent("mock", "--config", str(DEVICES / f"{agent}.toml"), "--seed", "5", "--shoppers", "30",
                         "--randomized-share", "0", "--fixtures", "0", "--neighbours", "0",
                         "--truth", str(tmp_path / f"{agent}.truth"), env=env, stderr_path=tmp_path / f"{agent}.log")
             for agent in ("agent-1", "agent-2")]
    try:
        deadline = time.monotonic() + 20
        while len({p["agent"] for p in collector.payloads("/status")}) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        scenario = contract.Scenario("2", (contract.ScenarioStep("ENTER", 937, 50),
                                           contract.ScenarioStep("MOVE", 650, 400),
                                           contract.ScenarioStep("EXIT", 1071, 50)), step_s=2.0)
        publish(mqtt_broker.host, mqtt_broker.port,
                [(contract.scenario_topic("demo"), contract.encode_scenario(scenario))])
        deadline = time.monotonic() + 60
        while not _heard_enough(collector, tmp_path / "agent-1.truth") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        codes = [stop_agent(p) for p in procs]
        collector.close()
    assert codes == [0, 0], [(tmp_path / f"{a}.log").read_text()[-2000:] for a in ("agent-1", "agent-2")]
    enters = _enters(collector)
    assert len(enters["agent-1"]) >= 3 and len(enters["agent-2"]) >= 3
    assert enters["agent-1"] & enters["agent-2"], "no shopper was heard by both agents"
    for p in collector.payloads("/enter"):
        assert contract.decode_agent(f"floorwalker/demo/agents/{p['agent']}/enter", json.dumps(p))
        assert p["ranges"] and {r["sniffer"] for r in p["ranges"]} <= {"s1", "s2", "s3"}  # the demo layout
    links = {(p["device"], p["customer_id"]) for p in collector.payloads("/link")}
    lines = [json.loads(line) for line in (tmp_path / "agent-1.truth").read_text().splitlines()]
    truth = [t for t in lines if t["kind"] in ("shopper", "staff")]
    assert any(t["kind"] == "occupancy" and t["people"] >= 1 for t in lines)
    truth_devices = {t["device"] for t in truth}
    assert enters["agent-1"] <= truth_devices  # every device the agent reported is a simulated phone
    scripted = {t["device"] for t in truth if t["shopper"].startswith("scenario-2-")}
    assert len(scripted) == 1 and (scripted.pop(), "2") in links
    assert any(t["customer_id"] for t in truth) and any(t["zone"] for t in truth)
