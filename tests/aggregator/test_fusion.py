"""Fusion: the ranges it hands the positioning engine, and the ranges it refuses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.config import SnifferConfig, load_deployment
from agent.contract import Presence, Range
from agent.positioning.calibration import LogDistanceModel
from agent.positioning.locator import Locator
from agent.positioning.multilateration import Anchor
from aggregator.fusion import AGE_SPEED_MPS, Fusion
from tests.conftest import CONFIG_DIR

DEVICES = tuple(load_deployment(CONFIG_DIR))
STORE = DEVICES[0].store
MPP = STORE.plan.metres_per_px
T0 = 1_700_000_000.0


def _rssi(sniffer: SnifferConfig, x: float, y: float) -> float:
    """The sniffer's calibrated RSSI of a phone at plan (x, y), 1.2 m up, without noise."""
    floor_m = math.hypot(x - sniffer.position_px[0], y - sniffer.position_px[1]) * MPP
    return round(LogDistanceModel.fit(sniffer.calibration).rssi_at(math.hypot(floor_m, sniffer.height_m - 1.2)), 1)


def report(agent_index: int, ts: float, x: float, y: float, *, extra: tuple[Range, ...] = ()) -> Presence:
    """What one agent says of device "d1" truly at plan (x, y): a range from each of its sniffers (the
    RSSI the grid filter reads, the distance 10 % long the solver reads)."""
    device = DEVICES[agent_index]
    ranges = tuple(Range(s.id, s.position_px[0], s.position_px[1], _rssi(s, x, y),
                         max(0.0, math.hypot(x - s.position_px[0], y - s.position_px[1]) * MPP * 1.1))
                   for s in device.sniffers)
    return Presence("move", f"{device.agent_id}:{ts}", device.agent_id, ts, "d1", x, y, 2.0, -60.0, 3.0,
                    False, ranges + extra)


def test_a_fused_fix_is_the_locator_on_the_same_anchors() -> None:
    # Fusion builds the solver's columns itself (no Anchor objects, no second validation): the fix
    # must be what Locator.update makes of the same ranges, old ranges' sigmas grown included.
    fusion = Fusion(STORE, list(DEVICES), engine="solver")
    locator = Locator(fusion.bounds_m)
    own = Presence("move", "own:1", "agent-x", T0, "d1", 700.0, 400.0, 2.5, -60.0, 3.0)
    fusion.add(own)  # no ranges: the agent's own estimate, a position-like anchor
    for k, agent_index in enumerate([0, 1, 2, 3, 0, 1]):
        ts = T0 + 0.4 * k
        fusion.add(report(agent_index % len(DEVICES), ts, 600.0 + 20 * k, 500.0))
        fix = fusion.locate("d1", ts)
        anchors = []
        for rts, x, y, d, sigma in fusion.tracks["d1"].ranges.values():
            age = ts - rts
            anchors.append(Anchor(x, y, d, math.hypot(sigma, AGE_SPEED_MPS * age) if age > 0.5 else sigma))
        est = locator.update(ts, anchors)
        assert fix is not None and fix.anchors == len(anchors)
        assert (fix.x, fix.y) == STORE.plan.clamp((est.x_m / MPP, est.y_m / MPP))
        assert fix.accuracy_m == est.accuracy_m


def test_each_range_gets_its_calibrated_sniffers_sigma_whether_a_range_is_a_tuple_or_a_range() -> None:
    # Fusion.add writes LogDistanceModel.sigma_m out (the aggregator's hot path): same value, to the
    # bit, at the distance floor, below it, and far; the MQTT process hands ranges over as plain tuples.
    # (The solver's engine: with the grid, a report of known sniffers keeps no ranges at all.)
    fusion = Fusion(STORE, list(DEVICES), engine="solver")
    device = DEVICES[0]
    sniffer = device.sniffers[0]
    model = fusion.models[(device.agent_id, sniffer.id)]
    for k, d in enumerate([0.0, 0.05, 0.1, 0.3, 1.0, 2.7, 13.3, 80.0, 1e5]):
        for r in (Range(sniffer.id, 10.0, 20.0, -70.0, d), (sniffer.id, 10.0, 20.0, -70.0, d)):
            fusion.add(Presence("move", f"m{k}", device.agent_id, T0 + k, "d1", 1.0, 1.0, 2.0, -70.0, d, False,
                                (r,)))  # type: ignore[arg-type]
            assert fusion.tracks["d1"].ranges[(device.agent_id, sniffer.id)] == (T0 + k, 10.0 * MPP, 20.0 * MPP,
                                                                                d, model.sigma_m(d))
    # an agent the deployment does not know: ~30 % of the distance, at least 0.3 m
    fusion.add(Presence("move", "u1", "agent-x", T0, "d2", 1.0, 1.0, 2.0, -70.0, 4.0, False,
                        (("sx", 1.0, 1.0, -70.0, 4.0),)))  # type: ignore[arg-type]
    assert fusion.tracks["d2"].ranges[("agent-x", "sx")][4] == pytest.approx(1.2)


@pytest.mark.parametrize("bad", [Range("far", 1e9, 10.0, -60.0, 3.0), Range("far", 10.0, 10.0, -60.0, 1e7)])
def test_a_range_beyond_the_solvers_limit_fails_the_fix_until_it_goes_stale(bad: Range) -> None:
    # Locator.update would raise BadReading for it; fusion checks the same limit itself.
    fusion = Fusion(STORE, list(DEVICES), window_s=20.0)
    fusion.add(report(0, T0, 600.0, 500.0, extra=(bad,)))
    assert fusion.locate("d1", T0) is None
    assert fusion.failures == 1
    fusion.add(report(0, T0 + 25.0, 600.0, 500.0))  # the bad range is older than the window now
    assert fusion.locate("d1", T0 + 25.0) is not None
    assert fusion.failures == 1


def _walk_the_boys_mens_edge(fusion: Fusion) -> list[str | None]:
    """d1 walks east along the Boy's / Men's edge (y 661), every agent reporting each 2 s; zones shown."""
    shown = []
    for k in range(10):
        ts = T0 + 2.0 * k
        for a in range(len(DEVICES)):
            fusion.add(report(a, ts + 0.01 * a, 700.0 + 25.0 * k, 661.0))
        fix = fusion.locate("d1", ts + 0.05)
        assert fix is not None
        shown.append(fix.zone.name if fix.zone else None)
    return shown


@pytest.mark.parametrize(("active", "quiet"), [("Men's", "Boy's"), ("Boy's", "Men's")])
def test_pir_reports_decide_a_shopper_walking_on_the_edge_of_two_zones(active: str, quiet: str) -> None:
    # Ingest hands every PIR report to Fusion.motion; the zone HMM weighs the two sides by them.
    fusion = Fusion(STORE, list(DEVICES))
    fusion.motion(active, "agent-3/pir", True, T0 - 10.0)
    fusion.motion(quiet, "agent-2/pir", False, T0 - 10.0)
    assert _walk_the_boys_mens_edge(fusion)[-1] == active


def test_the_device_files_strip_pirs_weigh_the_grid_by_their_own_area() -> None:
    # agent-2's pir-boys-s watches the 1 m strip inside Boy's south edge (its device file's area): ingest
    # passes "<agent>/<pir id>", and the fusion's board counts it for that strip, not for all of Boy's.
    fusion = Fusion(STORE, list(DEVICES))
    strips = {f"{d.agent_id}/{p.id}": p.area for d in DEVICES for p in d.pirs if p.area is not None}
    assert strips and fusion.pirs.areas == strips
    fusion.motion("Men's", "agent-3/pir-mens", True, T0 - 10.0)
    fusion.motion("Boy's", "agent-2/pir-boys", True, T0 - 10.0)
    fusion.motion("Boy's", "agent-2/pir-boys-s", True, T0 - 10.0)
    assert fusion.pirs.area_state["agent-2/pir-boys-s"].active
    assert fusion.pirs.zones[1].active == {"agent-2/pir-boys"}  # Boy's own PIR only
    grid = fusion.grid
    assert grid is not None
    cells = grid.pir_cells(True)
    assert cells is not None
    cover = grid.pir_cover["agent-2/pir-boys-s"]
    boys = grid.shares[1].reshape(grid.ny, grid.nx)
    in_strip = float(cells[np.isclose(cover, 1.0)].min())
    rest_of_boys = float(cells[np.isclose(boys, 1.0) & np.isclose(cover, 0.0)].max())
    assert in_strip > 1.5 * rest_of_boys


def test_a_device_heard_only_through_the_grid_goes_stale_after_the_window() -> None:
    # Reports of known sniffers go wholly to the grid and keep no solver ranges; the window still holds.
    fusion = Fusion(STORE, list(DEVICES), window_s=20.0)
    fusion.add(report(0, T0, 600.0, 500.0))
    assert fusion.tracks["d1"].ranges == {}
    fix = fusion.locate("d1", T0)
    assert fix is not None and fix.zone is not None
    assert fusion.locate("d1", T0 + 19.0) is not None
    assert fusion.locate("d1", T0 + 21.0) is None


def test_a_device_every_agent_dropped_has_no_fix() -> None:
    fusion = Fusion(STORE, list(DEVICES))
    fusion.add(report(0, T0, 600.0, 500.0))
    fusion.add(report(1, T0 + 0.01, 600.0, 500.0))
    assert fusion.locate("d1", T0 + 0.05) is not None
    fusion.drop_agent("d1", DEVICES[0].agent_id)
    assert fusion.locate("d1", T0 + 0.1) is not None  # the other agent still hears it
    fusion.drop_agent("d1", DEVICES[1].agent_id)
    assert fusion.locate("d1", T0 + 0.2) is None
