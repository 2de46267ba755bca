"""Hostile MQTT payloads: the decoders return a message or a typed rejection, never raise."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import contract as c
from tests.fuzz.budget import fuzz_settings

pytestmark = pytest.mark.fuzz

TOPICS = [c.agent_topic("demo", "agent-1", k) for k in c.AGENT_KINDS] + [
    "floorwalker/demo/agents/agent-1", "floorwalker//agents//move", "x" * 300, "", "#"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30)
GOOD = json.loads(c.encode_agent(c.Presence("move", "agent-1:1", "agent-1", 1795435593.0, "d-1", 1.0, 2.0, 1.0,
                                            -60.0, 1.0, False, (c.Range("s1", 1.0, 2.0, -60.0, 1.0),))))


def _check(result: object) -> None:
    assert isinstance(result, (c.Presence, c.Motion, c.Door, c.Link, c.Health, c.Status, c.Rejection))
    if isinstance(result, c.Rejection):
        assert result.reason and isinstance(result.detail, str)


@fuzz_settings(2.0)
@given(st.sampled_from(TOPICS), st.binary(max_size=2048))
def test_random_bytes(topic: str, payload: bytes) -> None:
    _check(c.decode_agent(topic, payload))


@fuzz_settings(2.0)
@given(st.sampled_from(TOPICS), json_values)
def test_random_json(topic: str, value: object) -> None:
    _check(c.decode_agent(topic, json.dumps(value, allow_nan=True)))


@fuzz_settings(2.0)
@given(st.sampled_from(c.PRESENCE_KINDS), st.dictionaries(st.sampled_from(sorted(GOOD)), json_values, max_size=6))
def test_mutated_good_payload(kind: str, changes: dict[str, object]) -> None:
    """Valid messages with fields swapped for arbitrary values: the likeliest hostile input."""
    payload = json.dumps({**GOOD, **changes}, allow_nan=True)
    result = c.decode_agent(c.agent_topic("demo", "agent-1", kind), payload)
    _check(result)
    if isinstance(result, c.Presence):  # whatever got through is what the contract promises
        assert result.agent == "agent-1" and result.accuracy_m >= 0 and result.ts > 0


@fuzz_settings()
@given(st.sampled_from(["enter", "move", "exit", "browsing", "prediction"]), json_values)
def test_customer_tier(kind: str, value: object) -> None:
    result = c.decode_customer(kind, json.dumps(value, allow_nan=True))
    assert isinstance(result, (c.CustomerEvent, c.Prediction, c.Rejection))


@fuzz_settings()
@given(json_values)
def test_scenarios(value: object) -> None:
    result = c.decode_scenario(json.dumps({"customer": {"customer_id": 1}, "path": value}, allow_nan=True))
    assert isinstance(result, (c.Scenario, c.Rejection))
    if isinstance(result, c.Scenario):
        assert 0 < len(result.path) <= c.MAX_SCENARIO_POINTS
