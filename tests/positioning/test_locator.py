"""The track object (Locator) and properties of the solver under arbitrary input."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import BadReading
from agent.positioning.calibration import LogDistanceModel
from agent.positioning.locator import Locator
from agent.positioning.multilateration import Anchor, columns, locate

BOUNDS = (0.0, 0.0, 6.0, 4.0)
CORNERS = [(0.2, 3.8), (0.2, 0.2), (5.8, 3.8), (5.8, 0.2)]
MODEL = LogDistanceModel(-59.0, 3.0)


def noisy_anchors(rng: random.Random, x: float, y: float, *, blocked: int | None = None) -> list[Anchor]:
    out = []
    for i, (ax, ay) in enumerate(CORNERS):
        rssi = MODEL.rssi_at(math.hypot(x - ax, y - ay)) + rng.gauss(0, 2.5) - (8.0 if i == blocked else 0.0)
        d = MODEL.distance_m(rssi)
        out.append(Anchor(ax, ay, d, MODEL.sigma_m(d)))
    return out


def test_a_standing_device_with_one_receiver_blocked_for_good_is_found() -> None:
    rng = random.Random(21)
    locator = Locator(BOUNDS)
    single_err = []
    for k in range(60):
        anchors = noisy_anchors(rng, 2.0, 1.0, blocked=2)  # 8 dB lost on every reading: a shelf in the way
        est = locator.update(k * 0.5, anchors)
        fix = locate(anchors, BOUNDS)
        single_err.append(math.hypot(fix.x_m - 2.0, fix.y_m - 1.0))
    err = math.hypot(est.x_m - 2.0, est.y_m - 1.0)
    assert err < 0.5
    assert err < sorted(single_err)[len(single_err) // 2]
    assert locator.last_fix is not None


def test_the_track_beats_single_fixes_on_a_walk() -> None:
    rng = random.Random(5)
    locator = Locator(BOUNDS)
    track_err, single_err = [], []
    for k in range(80):
        x, y = 0.5 + 5.0 * k / 79, 0.5 + 3.0 * k / 79
        anchors = noisy_anchors(rng, x, y, blocked=k % 4 if k % 7 == 0 else None)
        est = locator.update(k * 0.2, anchors)
        single = locate(anchors, BOUNDS)
        if k >= 10:
            track_err.append(math.hypot(est.x_m - x, est.y_m - y))
            single_err.append(math.hypot(single.x_m - x, single.y_m - y))
    assert sorted(track_err)[len(track_err) // 2] < 0.7 * sorted(single_err)[len(single_err) // 2]


def test_one_or_two_receivers_and_time_going_backwards_are_handled() -> None:
    locator = Locator(BOUNDS)
    one = locator.update(10.0, [Anchor(0.2, 0.2, 1.5, 0.4)])
    assert one.accuracy_m >= 1.0
    two = locator.update(9.0, [Anchor(0.2, 0.2, 1.5, 0.4), Anchor(5.8, 0.2, 4.0, 1.0)])
    assert 0.0 <= two.x_m <= 6.0 and 0.0 <= two.y_m <= 4.0
    locator.reset()
    assert locator.filter.estimate is None


def test_locator_rejects_bad_input_without_losing_its_state() -> None:
    rng = random.Random(1)
    locator = Locator(BOUNDS)
    before = locator.update(0.0, noisy_anchors(rng, 3.0, 2.0))
    for bad in ([], [Anchor(math.nan, 1.0, 2.0, 0.4)], [Anchor(1.0, 1.0, math.inf, 0.4)]):
        try:
            locator.update(1.0, bad)
        except BadReading:
            pass
        else:
            raise AssertionError(f"{bad!r} was accepted")
    assert locator.filter.estimate == before


finite = st.floats(min_value=-50.0, max_value=50.0, allow_nan=False)
anchor = st.builds(Anchor, finite, finite, st.floats(min_value=0.0, max_value=100.0),
                   st.floats(min_value=1e-3, max_value=50.0))


@settings(max_examples=300, deadline=None)
@given(st.lists(anchor, min_size=1, max_size=8))
def test_any_finite_anchors_give_a_finite_estimate_inside_the_bounds(anchors: list[Anchor]) -> None:
    est = locate(anchors, BOUNDS)
    assert 0.0 <= est.x_m <= 6.0 and 0.0 <= est.y_m <= 4.0
    assert math.isfinite(est.accuracy_m) and est.accuracy_m > 0


fix = st.tuples(st.floats(min_value=0.0, max_value=1e5), st.floats(min_value=-1e4, max_value=1e4),
                st.floats(min_value=-1e4, max_value=1e4), st.floats(min_value=0.0, max_value=1e3))


@settings(max_examples=200, deadline=None)
@given(st.lists(fix, min_size=1, max_size=30))
def test_motion_filter_stays_finite_and_under_the_speed_cap(fixes: list[tuple[float, float, float, float]]) -> None:
    from agent.positioning.motion import MotionFilter

    f = MotionFilter(keep_steps=5)
    for ts, x, y, acc in fixes:
        est = f.update(ts, x, y, acc)
        assert all(math.isfinite(v) for v in (est.x_m, est.y_m, est.accuracy_m))
        assert math.hypot(*f.velocity_mps) <= f.max_speed_mps + 1e-9
    smoothed = f.smoothed(4)
    assert smoothed is not None and math.isfinite(smoothed.x_m) and math.isfinite(smoothed.accuracy_m)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=0.0, max_value=1e4), st.lists(anchor, min_size=1, max_size=6)),
                min_size=1, max_size=10))
def test_locator_stays_inside_the_bounds(steps: list[tuple[float, list[Anchor]]]) -> None:
    locator = Locator(BOUNDS)
    for ts, anchors in steps:
        est = locator.update(ts, anchors)
        assert math.isfinite(est.accuracy_m)
        assert 0.0 <= est.x_m <= 6.0 and 0.0 <= est.y_m <= 4.0


def test_update_checked_follows_the_same_track_as_update() -> None:
    # The aggregator's trusted path (pre-validated columns) must not change a single fix.
    rng = random.Random(5)
    checked, plain = Locator(BOUNDS), Locator(BOUNDS)
    for k in range(40):
        anchors = noisy_anchors(rng, 1.0 + 0.1 * k, 2.0, blocked=k % 4 if k % 3 == 0 else None)
        assert checked.update_checked(k * 0.1, columns(anchors)) == plain.update(k * 0.1, anchors)
        assert checked.last_fix == plain.last_fix


@pytest.mark.parametrize("bad", [math.nan, math.inf, 2e6])
def test_update_still_rejects_bad_anchors_and_keeps_its_track(bad: float) -> None:
    locator = Locator(BOUNDS)
    good = noisy_anchors(random.Random(1), 2.0, 2.0)
    before = locator.update(0.0, good)
    with pytest.raises(BadReading):
        locator.update(0.1, [*good[:3], Anchor(5.8, 0.2, bad, 0.5)])
    assert locator.filter.estimate == before


def test_motion_is_the_filters_state_for_a_room_decision() -> None:
    locator = Locator(BOUNDS)
    assert locator.motion is None
    rng = random.Random(3)
    for k in range(30):
        locator.update(k * 0.1, noisy_anchors(rng, 1.0 + 0.05 * k, 2.0))
    m = locator.motion
    assert m is not None
    assert (m.x_m, m.y_m) == (locator.filter.estimate.x_m, locator.filter.estimate.y_m)
    assert m.vx_mps > 0  # walking east at 0.5 m/s
    assert 0 < m.var_x < 0.25 and 0 < m.var_vx
