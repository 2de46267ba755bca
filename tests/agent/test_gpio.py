"""PIRs and the door counter: pure logic, then real gpiozero devices on MockFactory pins."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from agent.config import DoorConfig, PirConfig, load_device
from agent.sources.gpio import DoorCounter, DoorEvent, Edge, GpioInputs, GpioLogic, MotionEvent, PirHoldOff

DOOR = DoorConfig("door-main", 23, 24, max_gap_s=1.5, bounce_s=0.0)
DEVICE = Path(__file__).resolve().parents[2] / "firmware-config" / "devices" / "agent-1.toml"


def run_door(steps: list[tuple[str, bool, float]]) -> list[str]:
    counter = DoorCounter(DOOR)
    return [e.direction for beam, broken, ts in steps if (e := counter.edge(beam, broken, ts)) is not None]


@pytest.mark.parametrize("name, steps, expected", [
    ("entry", [("a", True, 0), ("b", True, .2), ("a", False, .4), ("b", False, .6)], ["in"]),
    ("exit", [("b", True, 0), ("a", True, .2), ("b", False, .4), ("a", False, .6)], ["out"]),
    ("entry, beams never overlap", [("a", True, 0), ("a", False, .1), ("b", True, .2), ("b", False, .3)], []),
    ("turns back", [("a", True, 0), ("b", True, .2), ("b", False, .4), ("a", False, .6)], []),
    ("stops in the beam, then walks in", [("a", True, 0), ("b", True, .3), ("a", False, 30), ("b", False, 31)],
     ["in"]),
    ("too slow between beams", [("a", True, 0), ("b", True, 5), ("a", False, 5.1), ("b", False, 5.2)], []),
    ("one beam only", [("a", True, 0), ("a", False, 1)], []),
    ("repeated states are ignored", [("a", True, 0), ("a", True, .1), ("b", True, .2), ("b", True, .25),
                                     ("a", False, .4), ("b", False, .6)], ["in"]),
    ("two people", [("a", True, 0), ("b", True, .2), ("a", False, .4), ("b", False, .6),
                    ("b", True, 2), ("a", True, 2.2), ("b", False, 2.4), ("a", False, 2.6)], ["in", "out"]),
])
def test_door_counter(name: str, steps: list[tuple[str, bool, float]], expected: list[str]) -> None:
    assert run_door(steps) == expected


def test_pir_hold_off() -> None:
    pir = PirHoldOff(PirConfig("pir-1", 17, "Women's", hold_off_s=5))
    assert pir.edge(True, 0) == MotionEvent("pir-1", "Women's", True, 0)
    assert pir.edge(False, 1) is None
    assert pir.tick(4) is None
    assert pir.edge(True, 4.5) is None  # the same person moved again: still one motion
    assert pir.edge(False, 6) is None
    assert pir.tick(10) is None
    assert pir.tick(11) == MotionEvent("pir-1", "Women's", False, 11)
    assert pir.tick(20) is None


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


def drain_until(edges: queue.Queue[Edge], logic: GpioLogic, want: int, timeout_s: float = 3.0) -> list[object]:
    events: list[object] = []
    deadline = time.monotonic() + timeout_s
    while len(events) < want and time.monotonic() < deadline:
        try:
            edge = edges.get(timeout=0.05)
        except queue.Empty:
            continue
        if (event := logic.edge(edge)) is not None:
            events.append(event)
    return events


def test_real_devices_on_mock_pins(factory: MockFactory) -> None:
    device = load_device(DEVICE)
    edges: queue.Queue[Edge] = queue.Queue()
    logic = GpioLogic(device)
    with GpioInputs(device, edges.put, pin_factory=factory):
        a, b, pir = factory.pin(23), factory.pin(24), factory.pin(17)
        for pin, level in ((a, "low"), (b, "low"), (a, "high"), (b, "high")):  # low = beam broken
            getattr(pin, f"drive_{level}")()
            time.sleep(0.02)
        pir.drive_high()
        events = drain_until(edges, logic, 2)
    kinds = sorted(type(e).__name__ for e in events)
    assert kinds == ["DoorEvent", "MotionEvent"]
    door = next(e for e in events if isinstance(e, DoorEvent))
    motion = next(e for e in events if isinstance(e, MotionEvent))
    assert door.direction == "in" and door.sensor == "door-main"
    assert motion.active and motion.zone == "Women's"


def test_motion_present_at_start_up_is_reported(factory: MockFactory) -> None:
    device = load_device(DEVICE)
    factory.pin(17).drive_high()
    edges: queue.Queue[Edge] = queue.Queue()
    with GpioInputs(device, edges.put, pin_factory=factory):
        first = edges.get(timeout=2)
    assert first.sensor == "pir-womens" and first.active
