"""Turn what the scenario tab (or seed 000's UI) sends into a playable path for the mock agents.

The person drawing a scenario places a few pins; the mock sensors need a walk. This module adds
the store visit around the pins (enter at the entrance, leave by the exit), makes a FOCUS pin
linger (five points around it, so dwell and browsing detection fire as for a real shopper), and
fills long gaps so consecutive points are at most ``MAX_STEP_PX`` apart (otherwise the simulated
phone would teleport between sniffers and the positioning filter would rightly reject it).

Pure functions, no I/O: the HTTP handler in ``aggregator/api/pages.py`` validates, builds and
publishes with :func:`agent.contract.encode_scenario`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final

from agent.contract import (
    MAX_SCENARIO_POINTS,
    STEP_S_MAX,
    STEP_S_MIN,
    Rejection,
    Scenario,
    ScenarioStep,
    decode_scenario,
)
from agent.geometry import Plan, Point

MAX_STEP_PX: Final = 300.0
FOCUS_POINTS: Final = 5
# Where the lingering points sit around a focus pin (px): a shopper turning things over on a rack.
FOCUS_OFFSETS_PX: Final = ((0.0, 0.0), (12.0, 0.0), (12.0, 12.0), (0.0, 12.0), (-6.0, 6.0))
STEP_S_DEFAULT: Final = 5.0
MAX_PINS: Final = MAX_SCENARIO_POINTS
PIN_TYPES: Final = {"movement": "MOVE", "move": "MOVE", "focus": "FOCUS"}


class ScenarioError(ValueError):
    """A scenario request we refuse: ``field`` names the offending part, for a 400 JSON body."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def as_json(self) -> dict[str, str]:
        return {"error": self.message, "field": self.field}


@dataclass(frozen=True, slots=True)
class Pin:
    """A pin placed on the plan: ``kind`` is MOVE or FOCUS; ``timestamp_ms`` only from seed-000 JSON."""

    kind: str
    x_px: float
    y_px: float
    timestamp_ms: float | None = None


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ScenarioError(field, "must be a number")
    try:
        number = float(value)
    except ValueError:
        raise ScenarioError(field, f"must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise ScenarioError(field, "must be a finite number")
    return number


def parse_step_s(value: Any) -> float:
    """Seconds between consecutive points: 1..15, default 5 (seed 000's slider)."""
    if value is None or value == "":
        return STEP_S_DEFAULT
    step_s = _number(value, "step_s")
    if not STEP_S_MIN <= step_s <= STEP_S_MAX:
        raise ScenarioError("step_s", f"must be between {STEP_S_MIN:g} and {STEP_S_MAX:g} seconds, got {step_s:g}")
    return step_s


def _customer_id(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise ScenarioError("customer_id", "is required")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, (str, int)) or str(value) == "" or len(str(value)) > 128:
        raise ScenarioError("customer_id", "must be a customer id (1..128 characters)")
    return str(value)


def _check_point(plan: Plan, x: float, y: float, field: str) -> None:
    if not plan.contains((x, y)):
        raise ScenarioError(field, f"({x:g}, {y:g}) is outside the plan (0..{plan.width_px}, 0..{plan.height_px})")


def parse_request(body: Any, plan: Plan) -> tuple[str, list[Pin], float, bool, bool]:
    """Either form of request -> ``(customer_id, pins, step_s, has_enter, has_exit)``.

    The tab's form: ``{"customer_id", "step_s", "pins": [{"type": "movement"|"focus", "x", "y"}]}``.
    Seed 000's JSON: ``{"customer": {"customer_id"}, "path": [{"type", "location": {x, y}, "timestamp"}]}``
    (types ENTER/MOVE/FOCUS/EXIT, any case; timestamps in epoch ms)."""
    if not isinstance(body, Mapping):
        raise ScenarioError("body", "a JSON object is expected")
    if "path" in body:
        decoded = decode_scenario(body)
        if isinstance(decoded, Rejection):
            field = decoded.detail.split()[0] if decoded.reason == "missing-field" and decoded.detail else "path"
            raise ScenarioError(field, f"{decoded.reason}: {decoded.detail}")
        steps = list(decoded.path)
        step_s = parse_step_s(body.get("step_s")) if body.get("step_s") not in (None, "") else _step_from(steps)
        has_enter = steps[0].type == "ENTER"
        has_exit = steps[-1].type == "EXIT"
        pins = []
        for i, s in enumerate(steps):
            _check_point(plan, s.x, s.y, f"path[{i}].location")
            kind = s.type if s.type in ("MOVE", "FOCUS") else "MOVE"
            pins.append(Pin(kind, s.x, s.y, s.timestamp_ms))
        if any(s.type == "ENTER" for s in steps[1:]) or any(s.type == "EXIT" for s in steps[:-1]):
            raise ScenarioError("path", "ENTER may only be the first point and EXIT only the last")
        stamps = [s.timestamp_ms for s in steps if s.timestamp_ms is not None]
        if any(b < a for a, b in pairwise(stamps)):
            raise ScenarioError("path", "timestamps must not go backwards")
        return decoded.customer_id, pins, step_s, has_enter, has_exit
    customer_id = _customer_id(body.get("customer_id"))
    step_s = parse_step_s(body.get("step_s"))
    raw = body.get("pins")
    if not isinstance(raw, list) or not raw:
        raise ScenarioError("pins", "place at least one pin on the plan")
    if len(raw) > MAX_PINS:
        raise ScenarioError("pins", f"at most {MAX_PINS} pins")
    pins = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ScenarioError(f"pins[{i}]", "must be an object {type, x, y}")
        kind = PIN_TYPES.get(str(item.get("type", "movement")).lower())
        if kind is None:
            raise ScenarioError(f"pins[{i}].type", "must be movement or focus")
        x = _number(item.get("x"), f"pins[{i}].x")
        y = _number(item.get("y"), f"pins[{i}].y")
        _check_point(plan, x, y, f"pins[{i}]")
        pins.append(Pin(kind, x, y))
    return customer_id, pins, step_s, False, False


def _step_from(steps: Sequence[ScenarioStep]) -> float:
    """Seed 000's JSON has no step time, only ms timestamps: the agents play ``step_s`` per point, so
    take the typical (median) gap between the given points, within 1..15 s."""
    stamps = [s.timestamp_ms for s in steps if s.timestamp_ms is not None]
    gaps = sorted(b - a for a, b in pairwise(stamps) if b > a)
    if not gaps:
        return STEP_S_DEFAULT
    return min(max(gaps[len(gaps) // 2] / 1000.0, STEP_S_MIN), STEP_S_MAX)


def _expand_focus(pin: Pin, plan: Plan, step_s: float) -> list[Pin]:
    """A focus pin -> FOCUS_POINTS MOVE points close together, ``step_s`` apart when timed."""
    out = []
    for i, (dx, dy) in enumerate(FOCUS_OFFSETS_PX[:FOCUS_POINTS]):
        x, y = plan.clamp((pin.x_px + dx, pin.y_px + dy))
        ts = None if pin.timestamp_ms is None else pin.timestamp_ms + i * step_s * 1000.0
        out.append(Pin("MOVE", x, y, ts))
    return out


def interpolate(points: Sequence[tuple[str, float, float, float | None]],
                max_step_px: float = MAX_STEP_PX) -> list[tuple[str, float, float, float | None]]:
    """Insert evenly spaced MOVE points so no two consecutive points are more than ``max_step_px`` apart.

    Timestamps (when both ends have one) are interpolated linearly with the position."""
    if not points:
        return []
    out = [points[0]]
    for prev, cur in pairwise(points):
        d = math.hypot(cur[1] - prev[1], cur[2] - prev[2])
        parts = max(1, math.ceil(d / max_step_px - 1e-9))
        for k in range(1, parts):
            f = k / parts
            ts = None
            if prev[3] is not None and cur[3] is not None:
                ts = prev[3] + (cur[3] - prev[3]) * f
            out.append(("MOVE", prev[1] + (cur[1] - prev[1]) * f, prev[2] + (cur[2] - prev[2]) * f, ts))
        out.append(cur)
    return out


def build(customer_id: str, pins: Sequence[Pin], step_s: float, plan: Plan, entrance: Point, exit_: Point,
          *, has_enter: bool = False, has_exit: bool = False,
          max_points: int = MAX_SCENARIO_POINTS) -> Scenario:
    """The full visit: ENTER (unless given), pins with focus expanded, EXIT (unless given), interpolated.

    Raises :class:`ScenarioError` when the result would exceed ``max_points`` points."""
    if not pins:
        raise ScenarioError("pins", "place at least one pin on the plan")
    timed = all(p.timestamp_ms is not None for p in pins)
    seq: list[tuple[str, float, float, float | None]] = []
    shift_ms = 0.0  # focus expansion pushes the rest of a timed path later
    for i, pin in enumerate(pins):
        ts = None if not timed else (pin.timestamp_ms or 0.0) + shift_ms
        pin = Pin(pin.kind, pin.x_px, pin.y_px, ts)
        if i == 0 and has_enter:
            seq.append(("ENTER", pin.x_px, pin.y_px, pin.timestamp_ms))
        elif i == len(pins) - 1 and has_exit:
            seq.append(("EXIT", pin.x_px, pin.y_px, pin.timestamp_ms))
        elif pin.kind == "FOCUS":
            seq.extend((p.kind, p.x_px, p.y_px, p.timestamp_ms) for p in _expand_focus(pin, plan, step_s))
            if timed:
                shift_ms += (FOCUS_POINTS - 1) * step_s * 1000.0
        else:
            seq.append(("MOVE", pin.x_px, pin.y_px, pin.timestamp_ms))
    if not has_enter:
        first_ts = None if not timed else (seq[0][3] or 0.0) - step_s * 1000.0
        seq.insert(0, ("ENTER", float(entrance[0]), float(entrance[1]), first_ts))
    if not has_exit:
        last_ts = None if not timed else (seq[-1][3] or 0.0) + step_s * 1000.0
        seq.append(("EXIT", float(exit_[0]), float(exit_[1]), last_ts))
    points = interpolate(seq)
    if len(points) > max_points:
        raise ScenarioError(
            "pins", f"the path needs {len(points)} points (pins, 5 per focus pin, and one every "
                    f"{MAX_STEP_PX:g} px between them, plus entrance and exit); at most {max_points}")
    steps = tuple(ScenarioStep(kind, round(x, 1), round(y, 1), None if ts is None else round(ts))
                  for kind, x, y, ts in points)
    return Scenario(customer_id=customer_id, path=steps, step_s=step_s)


def duration_s(scenario: Scenario) -> float:
    """How long the walk takes to play: from the timestamps when present, else ``step_s`` per step."""
    stamps = [s.timestamp_ms for s in scenario.path]
    if stamps and all(t is not None for t in stamps):
        return max(0.0, (stamps[-1] - stamps[0]) / 1000.0)  # type: ignore[operator]
    return (len(scenario.path) - 1) * scenario.step_s
