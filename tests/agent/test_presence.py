"""Presence: passers-by filtered, enter/move/exit, fixtures learned, positions from one or several sniffers."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_device
from agent.positioning.calibration import LogDistanceModel
from agent.presence import PresenceTracker, Sighting
from tests.agent.helpers import write_device

S2 = """
[[sniffers]]
id = "s2"
port = "/dev/null"
position = [1000, 330]
calibration = [{ distance_m = 1, rssi_dbm = -41 }, { distance_m = 8, rssi_dbm = -68 }]
"""


@pytest.fixture
def tracker(config_dir: Path) -> PresenceTracker:
    return PresenceTracker(load_device(write_device(config_dir, presence="static_after_s = 600")))


def test_enter_needs_min_sightings_above_the_floor(tracker: PresenceTracker) -> None:
    assert tracker.sighting(Sighting(0.0, "s1", "d-1", -95)) is None  # the street: below -90
    assert tracker.sighting(Sighting(0.1, "s1", "d-1", -60)) is None
    enter = tracker.sighting(Sighting(0.2, "s1", "d-1", -60))
    assert enter is not None and enter.kind == "enter"
    assert (enter.x, enter.y) == (600, 330)  # one sniffer: its own position, distance as accuracy
    assert enter.accuracy_m == enter.distance_m > 0
    assert [r.sniffer for r in enter.ranges] == ["s1"]
    assert tracker.stats["weak"] == 1


def test_passer_by_heard_once_never_enters(tracker: PresenceTracker) -> None:
    assert tracker.sighting(Sighting(0.0, "s1", "d-2", -70)) is None
    assert tracker.tick(100.0) == []
    assert tracker.stats["passers_by"] == 1


def test_move_when_distance_changes_then_exit_after_absence(tracker: PresenceTracker) -> None:
    tracker.sighting(Sighting(0.0, "s1", "d-3", -50))
    tracker.sighting(Sighting(0.1, "s1", "d-3", -50))
    assert tracker.sighting(Sighting(0.5, "s1", "d-3", -50)) is None  # same burst: no update
    assert tracker.sighting(Sighting(3.0, "s1", "d-3", -50)) is None  # no change: no move
    moves = [u for t in range(10, 40, 3) if (u := tracker.sighting(Sighting(float(t), "s1", "d-3", -68)))]
    assert moves and all(m.kind == "move" for m in moves)
    assert moves[-1].distance_m > 3.0
    assert tracker.tick(40.0) == []
    (exit_,) = tracker.tick(37.0 + 5.0)
    assert exit_.kind == "exit" and exit_.device == "d-3" and not tracker.tracks


def test_fixture_learned_and_ignored(tracker: PresenceTracker) -> None:
    updates = [u for t in range(0, 700, 2) if (u := tracker.sighting(Sighting(float(t), "s1", "printer", -55)))]
    assert [u.kind for u in updates] == ["enter", "exit"]  # steady RSSI: no moves; exit once learned
    assert updates[-1].ts == 600.0 and "printer" in tracker.static
    ignored = tracker.stats["static_ignored"]
    assert tracker.sighting(Sighting(701.0, "s1", "printer", -55)) is None
    assert tracker.sighting(Sighting(702.0, "s1", "printer", -55)) is None
    assert tracker.stats["static_ignored"] == ignored + 2 == 49 + 2  # 602..698 after learning, then these two


def test_two_sniffers_multilaterate_between_them(config_dir: Path) -> None:
    device = load_device(write_device(config_dir, extra=S2))
    tracker = PresenceTracker(device)
    model = LogDistanceModel.fit(device.sniffers[0].calibration)
    # A phone 3 m from s1 and 5 m from s2 (8 m apart at 0.02 m/px): on the line between, nearer s1.
    updates = [u for i, (sniffer, d) in enumerate([("s1", 3.2), ("s2", 5.0)])
               if (u := tracker.sighting(Sighting(i * 0.05, sniffer, "d-4", model.rssi_at(d))))]
    assert len(updates) == 1
    update = updates[0]
    assert 600 < update.x < 800 and {r.sniffer for r in update.ranges} == {"s1", "s2"}


def test_updates_carry_the_device_kind_and_linked_macs(tracker: PresenceTracker) -> None:
    tracker.sighting(Sighting(0.0, "s1", "d-9", -60, True, "neighbour", 3))
    enter = tracker.sighting(Sighting(0.1, "s1", "d-9", -60, True, "neighbour", 4))
    assert enter is not None and enter.kind == "enter"
    assert enter.device_kind == "neighbour" and enter.macs == 4
    (exit_,) = tracker.tick(10_000.0)
    assert exit_.kind == "exit" and exit_.device_kind == "neighbour" and exit_.macs == 4
