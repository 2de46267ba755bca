"""The scenario tab's path building: visit framing, focus lingering, interpolation, limits, validation."""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path

import pytest

from agent.config import load_store
from agent.contract import decode_scenario, encode_scenario
from aggregator.scenario_builder import (
    FOCUS_POINTS,
    MAX_STEP_PX,
    Pin,
    ScenarioError,
    build,
    duration_s,
    interpolate,
    parse_request,
    parse_step_s,
)

CONFIG = Path(__file__).resolve().parent.parent / "firmware-config"


@pytest.fixture(scope="module")
def store():
    return load_store(CONFIG / "store.toml")


def _build(store, body):
    cid, pins, step_s, has_enter, has_exit = parse_request(body, store.plan)
    return build(cid, pins, step_s, store.plan, store.entrance, store.exit, has_enter=has_enter, has_exit=has_exit)


def _gaps(scenario):
    return [math.hypot(b.x - a.x, b.y - a.y) for a, b in pairwise(scenario.path)]


def test_form_pins_become_a_visit_from_entrance_to_exit(store) -> None:
    s = _build(store, {"customer_id": "3", "pins": [{"type": "movement", "x": 550, "y": 600}]})
    assert s.customer_id == "3"
    assert s.step_s == 5.0
    assert (s.path[0].type, s.path[0].x, s.path[0].y) == ("ENTER", 937, 50)
    assert (s.path[-1].type, s.path[-1].x, s.path[-1].y) == ("EXIT", 1071, 50)
    assert any((p.x, p.y) == (550, 600) for p in s.path)
    assert {p.type for p in s.path[1:-1]} == {"MOVE"}


def test_points_are_at_most_300_px_apart_and_evenly_spaced(store) -> None:
    s = _build(store, {"customer_id": "1", "pins": [{"type": "movement", "x": 700, "y": 1200}]})
    gaps = _gaps(s)
    assert max(gaps) <= MAX_STEP_PX + 1e-6
    # entrance (937,50) -> (700,1200) is 1174 px: 4 equal legs of 293.5 px, not 300+300+300+274
    first_leg = [g for g in gaps[:4]]
    assert max(first_leg) - min(first_leg) < 1.0
    back_px = math.hypot(1071 - 700, 50 - 1200)  # 1208 px: 5 legs
    assert len(s.path) == 1 + 4 + math.ceil(back_px / MAX_STEP_PX) == 10


def test_exactly_300_px_needs_no_extra_point() -> None:
    pts = interpolate([("ENTER", 0, 0, None), ("MOVE", 300, 0, None)])
    assert len(pts) == 2
    pts = interpolate([("ENTER", 0, 0, None), ("MOVE", 301, 0, None)])
    assert len(pts) == 3 and pts[1][1] == pytest.approx(150.5)


def test_focus_pin_lingers_five_points_close_to_the_pin(store) -> None:
    s = _build(store, {"customer_id": "2", "step_s": 3,
                       "pins": [{"type": "movement", "x": 900, "y": 300}, {"type": "focus", "x": 800, "y": 550}]})
    near = [p for p in s.path if math.hypot(p.x - 800, p.y - 550) <= 20]
    assert len(near) == FOCUS_POINTS
    assert all(p.type == "MOVE" for p in near)  # expanded here, so agents never expand it again
    idx = [s.path.index(p) for p in near]
    assert idx == list(range(idx[0], idx[0] + FOCUS_POINTS))  # consecutive: a linger, not a revisit
    assert duration_s(s) == (len(s.path) - 1) * 3


def test_step_time_bounds() -> None:
    assert parse_step_s(None) == 5.0
    assert parse_step_s("7") == 7.0
    assert parse_step_s(1) == 1.0 and parse_step_s(15) == 15.0
    for bad in (0, 0.5, 16, "fast", float("nan"), True, [5]):
        with pytest.raises(ScenarioError) as err:
            parse_step_s(bad)
        assert err.value.field == "step_s"


def test_too_many_points_is_refused_with_a_count(store) -> None:
    pins = [{"type": "focus", "x": 500 + (i % 2) * 600, "y": 500} for i in range(20)]
    with pytest.raises(ScenarioError) as err:
        _build(store, {"customer_id": "1", "pins": pins})
    assert "at most 100" in err.value.message
    assert err.value.as_json()["field"] == "pins"
    # 19 focus pins at one spot fit: 95 points + enter + exit + interpolation
    with pytest.raises(ScenarioError):
        _build(store, {"customer_id": "1", "pins": [{"type": "focus", "x": 937, "y": 100}] * 20})
    ok = _build(store, {"customer_id": "1", "pins": [{"type": "focus", "x": 937, "y": 100}] * 19})
    assert len(ok.path) <= 100


@pytest.mark.parametrize(("body", "field"), [
    ([], "body"),
    ({"pins": [{"type": "movement", "x": 1, "y": 1}]}, "customer_id"),
    ({"customer_id": "1"}, "pins"),
    ({"customer_id": "1", "pins": []}, "pins"),
    ({"customer_id": "1", "pins": [{"type": "run", "x": 1, "y": 1}]}, "pins[0].type"),
    ({"customer_id": "1", "pins": [{"type": "focus", "x": "a", "y": 1}]}, "pins[0].x"),
    ({"customer_id": "1", "pins": [{"type": "focus", "x": 1}]}, "pins[0].y"),
    ({"customer_id": "1", "pins": [{"type": "focus", "x": 5000, "y": 10}]}, "pins[0]"),
    ({"customer_id": "1", "pins": [{"type": "focus", "x": -1, "y": 10}]}, "pins[0]"),
    ({"customer_id": "1", "pins": ["x"]}, "pins[0]"),
    ({"customer_id": {"a": 1}, "pins": [{"x": 1, "y": 1}]}, "customer_id"),
    ({"customer": {"customer_id": "1"}, "path": []}, "path"),
    ({"customer": {"customer_id": "1"}, "path": [{"type": "JUMP", "location": {"x": 1, "y": 1}}]}, "path"),
    ({"customer": {"customer_id": "1"}, "path": [{"type": "MOVE", "location": {"x": 9999, "y": 1}}]},
     "path[0].location"),
    ({"path": [{"type": "MOVE", "location": {"x": 1, "y": 1}}]}, "customer"),
    ({"customer": {"customer_id": "1"}, "path": [
        {"type": "EXIT", "location": {"x": 1, "y": 1}}, {"type": "MOVE", "location": {"x": 1, "y": 1}}]}, "path"),
    ({"customer": {"customer_id": "1"}, "path": [
        {"type": "MOVE", "location": {"x": 1, "y": 1}, "timestamp": 2000},
        {"type": "MOVE", "location": {"x": 1, "y": 1}, "timestamp": 1000}]}, "path"),
])
def test_bad_requests_name_the_field(store, body, field) -> None:
    with pytest.raises(ScenarioError) as err:
        _build(store, body)
    assert err.value.field == field, err.value.message


def test_seed_000_example_scenario_is_accepted_and_keeps_its_timing(store, shared_dir) -> None:
    body = json.loads((shared_dir / "reference/retail-demo/example_ui_scenario.json").read_text())
    s = _build(store, body)
    assert s.customer_id == "2"
    assert s.step_s == 2.0  # the agents play step_s per point: the example's 2 s gaps
    assert s.path[0].type == "ENTER" and (s.path[0].x, s.path[0].y) == (937, 50)
    assert s.path[-1].type == "EXIT" and (s.path[-1].x, s.path[-1].y) == (1071, 50)
    assert max(_gaps(s)) <= MAX_STEP_PX
    stamps = [p.timestamp_ms for p in s.path]
    assert stamps[0] == 1795435593561 and stamps[-1] == 1795435601561
    assert stamps == sorted(stamps)
    assert duration_s(s) == pytest.approx(8.0)
    # the wire form round-trips through the contract the agents decode with
    again = decode_scenario(encode_scenario(s))
    assert again == s


def test_seed_step_time_comes_from_timestamps_unless_given(store) -> None:
    def path(gaps_ms):
        t, out = 0, []
        for g in [0, *gaps_ms]:
            t += g
            out.append({"type": "MOVE", "location": {"x": 900, "y": 300}, "timestamp": t})
        return {"customer": {"customer_id": "1"}, "path": out}

    assert _build(store, path([3000, 3000, 9000])).step_s == 3.0
    assert _build(store, path([100, 200])).step_s == 1.0       # clamped to the tab's range
    assert _build(store, path([60_000, 60_000])).step_s == 15.0
    assert _build(store, {**path([3000]), "step_s": 7}).step_s == 7.0
    assert _build(store, {"customer": {"customer_id": "1"},
                          "path": [{"type": "MOVE", "location": {"x": 9, "y": 9}}]}).step_s == 5.0


def test_seed_scenario_draft_with_lowercase_focus_is_framed_and_expanded(store) -> None:
    body = {"customer": {"customer_id": "3"}, "path": [
        {"type": "move", "location": {"x": 939.63, "y": 164.44}},
        {"type": "focus", "location": {"x": 568.28, "y": 794.17}}]}
    s = _build(store, body)
    assert s.path[0].type == "ENTER" and s.path[-1].type == "EXIT"
    assert sum(1 for p in s.path if math.hypot(p.x - 568.28, p.y - 794.17) <= 20) == FOCUS_POINTS
    assert all(p.timestamp_ms is None for p in s.path)


def test_timed_focus_pushes_the_rest_of_the_path_later(store) -> None:
    pins = [Pin("MOVE", 937, 100, 0.0), Pin("FOCUS", 937, 300, 2000.0), Pin("MOVE", 937, 500, 4000.0)]
    s = build("1", pins, 2.0, store.plan, store.entrance, store.exit)
    stamps = [p.timestamp_ms for p in s.path]
    assert stamps == sorted(stamps)
    focus = [p for p in s.path if abs(p.y - 300) <= 12 and abs(p.x - 937) <= 12]
    assert [p.timestamp_ms for p in focus] == [2000, 4000, 6000, 8000, 10000]
    assert any(p.y == 500 and p.timestamp_ms == 12000 for p in s.path)
