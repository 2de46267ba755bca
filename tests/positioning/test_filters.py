"""RSSI smoothing, the motion filter, zone hysteresis and the calibration's sigma."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import BadCalibration, BadReading
from agent.geometry import Plan, Zone
from agent.positioning.calibration import MIN_INDOOR_N, LogDistanceModel, fit_receivers
from agent.positioning.motion import Motion, MotionFilter
from agent.positioning.smoothing import RssiSmoother
from agent.positioning.zones import ZoneTracker, _is_rectangle


def test_smoother_starts_at_the_first_reading_and_tracks_a_steady_signal() -> None:
    s = RssiSmoother()
    assert s.value is None
    assert s.update(0.0, -70.0) == -70.0
    for t in range(1, 20):
        s.update(float(t), -70.0)
    assert s.value == pytest.approx(-70.0)


def test_one_deep_dip_moves_the_smoothed_value_by_less_than_the_outlier_clip() -> None:
    s = RssiSmoother(half_life_s=8.0, outlier_db=8.0)
    for t in range(10):
        s.update(float(t), -60.0)
    after = s.update(10.0, -90.0)
    assert -60.0 - 8.0 < after < -60.0
    assert after > -63.0


def test_a_real_change_wins_after_a_few_readings() -> None:
    s = RssiSmoother(half_life_s=4.0)
    for t in range(10):
        s.update(float(t), -60.0)
    for t in range(10, 30):
        s.update(float(t), -75.0)
    assert s.value == pytest.approx(-75.0, abs=1.0)


def test_a_reading_after_a_long_silence_replaces_the_old_value() -> None:
    s = RssiSmoother(half_life_s=8.0, outlier_db=30.0)
    s.update(0.0, -50.0)
    assert s.update(200.0, -80.0) == pytest.approx(-80.0, abs=0.01)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 50.0, "x"])
def test_smoother_rejects_bad_rssi(bad: object) -> None:
    s = RssiSmoother()
    with pytest.raises(BadReading):
        s.update(0.0, bad)  # type: ignore[arg-type]
    assert s.value is None


def test_sigma_grows_with_distance() -> None:
    model = LogDistanceModel(-59.0, 3.0, 2.5)
    assert model.sigma_m(1.0) < model.sigma_m(4.0) < model.sigma_m(16.0)
    assert model.sigma_m(4.0) == pytest.approx(4.0 * math.log(10) * 2.5 / 30.0)
    assert model.sigma_m(0.0) >= 0.1


def test_fit_samples_recovers_model_and_noise() -> None:
    rng = random.Random(7)
    truth = LogDistanceModel(-55.0, 2.4)
    ds = [rng.uniform(0.5, 12.0) for _ in range(2000)]
    rs = [truth.rssi_at(d) + rng.gauss(0, 3.0) for d in ds]
    model = LogDistanceModel.fit_samples(ds, rs)
    assert model.rssi_at_1m == pytest.approx(-55.0, abs=0.5)
    assert model.n == pytest.approx(2.4, abs=0.1)
    assert model.sigma_db == pytest.approx(3.0, abs=0.2)


def _survey(rng: random.Random, model: LogDistanceModel, lo_m: float, hi_m: float,
            n: int = 500) -> tuple[list[float], list[float]]:
    ds = [rng.uniform(lo_m, hi_m) for _ in range(n)]
    return ds, [model.rssi_at(d) + rng.gauss(0, 3.0) for d in ds]


def test_fit_receivers_gives_each_receiver_its_offset_and_all_one_exponent() -> None:
    rng = random.Random(11)
    truth = {"a": LogDistanceModel(-50.0, 2.5), "b": LogDistanceModel(-58.0, 2.5), "c": LogDistanceModel(-54.0, 2.5)}
    # each receiver surveyed over a different stretch: only together do they span 0.5-12 m
    spans = {"a": (0.5, 3.0), "b": (3.0, 12.0), "c": (1.0, 6.0)}
    models = fit_receivers({k: _survey(rng, m, *spans[k]) for k, m in truth.items()})
    for k, m in truth.items():
        assert models[k].rssi_at_1m == pytest.approx(m.rssi_at_1m, abs=0.6)
        assert models[k].n == pytest.approx(2.5, abs=0.1)
        assert models[k].sigma_db == pytest.approx(3.0, abs=0.2)


def test_fit_receivers_never_fits_an_exponent_below_the_indoor_minimum() -> None:
    rng = random.Random(12)
    flat = LogDistanceModel(-60.0, 0.5)  # a survey where RSSI hardly falls: multipath, not path loss
    models = fit_receivers({"a": _survey(rng, flat, 1.0, 5.0), "b": _survey(rng, flat, 1.0, 5.0)})
    assert models["a"].n == MIN_INDOOR_N
    # the offset is refitted at that exponent: the survey's mean RSSI is still predicted at its mean log-distance
    ds, rs = _survey(random.Random(12), flat, 1.0, 5.0)
    mean_log = sum(math.log10(d) for d in ds) / len(ds)
    assert models["a"].rssi_at(10 ** mean_log) == pytest.approx(sum(rs) / len(rs), abs=0.5)


@pytest.mark.parametrize("samples", [{}, {"a": ([1.0], [-60.0])}, {"a": ([1.0, math.nan], [-60.0, -65.0])}])
def test_fit_receivers_refuses_a_receiver_without_two_samples(samples: dict) -> None:
    with pytest.raises(BadCalibration):
        fit_receivers(samples)


def test_motion_filter_averages_noise_of_a_standing_device() -> None:
    rng = random.Random(3)
    f = MotionFilter()
    for t in range(60):
        est = f.update(float(t), 2.0 + rng.gauss(0, 0.5), 1.0 + rng.gauss(0, 0.5), 0.7)
    assert math.hypot(est.x_m - 2.0, est.y_m - 1.0) < 0.3
    assert est.accuracy_m < 0.7  # better than one fix (0.7)


def test_motion_filter_follows_a_steady_walk_without_lag() -> None:
    rng = random.Random(4)
    f = MotionFilter()
    for t in range(40):
        est = f.update(t * 0.5, 0.5 * t * 0.5 + rng.gauss(0, 0.3), 1.0 + rng.gauss(0, 0.3), 0.42)
    assert abs(est.x_m - 0.5 * 39 * 0.5) < 0.4


def test_motion_filter_caps_speed() -> None:
    f = MotionFilter(max_speed_mps=1.6)
    f.update(0.0, 0.0, 0.0, 0.3)
    f.update(1.0, 20.0, 0.0, 0.3)  # a 20 m/s jump: not a person
    vx, vy = f.velocity_mps
    assert math.hypot(vx, vy) <= 1.6 + 1e-9


def test_motion_filter_rejects_non_finite() -> None:
    f = MotionFilter()
    with pytest.raises(BadReading):
        f.update(0.0, math.nan, 1.0, 0.5)
    with pytest.raises(BadReading):
        f.update(0.0, 1.0, 1.0, math.inf)


@pytest.mark.parametrize("field", ["ts", "x_m", "y_m", "var_x", "var_y"])
def test_update_cov_names_the_non_finite_value(field: str) -> None:
    values = {"ts": 1.0, "x_m": 1.0, "y_m": 1.0, "var_x": 0.1, "var_y": 0.1, field: math.nan}
    with pytest.raises(BadReading, match=f"^{field}: "):
        MotionFilter().update_cov(**values)


def test_predict_xy_is_predict_as_a_tuple() -> None:
    f = MotionFilter()
    assert f.predict_xy(0.0) is None and f.predict(0.0) is None
    f.update(0.0, 1.0, 1.0, 0.3)
    f.update(1.0, 1.5, 1.2, 0.3)
    est = f.predict(1.7)
    assert f.predict_xy(1.7) == (est.x_m, est.y_m, est.accuracy_m)


PLAN = Plan(1000, 500, 0.01, (
    Zone("left", "clothing", ((0, 0), (400, 0), (400, 500), (0, 500))),
    Zone("right", "sport", ((400, 0), (1000, 0), (1000, 500), (400, 500))),
))


def test_zone_tracker_holds_the_zone_inside_the_dead_band() -> None:
    tracker = ZoneTracker(PLAN, hysteresis_px=25.0)
    assert tracker.update(300, 250).name == "left"
    assert tracker.update(410, 250).name == "left"  # 10 px into "right": still left
    assert tracker.update(399, 250).name == "left"
    assert tracker.update(430, 250).name == "right"  # 30 px past the edge: switched
    assert tracker.update(390, 250).name == "right"


def test_zone_tracker_without_hysteresis_is_zone_at() -> None:
    tracker = ZoneTracker(PLAN, hysteresis_px=0.0)
    for x in (100, 401, 399, 400, 700):
        z = tracker.update(x, 250)
        assert z == PLAN.zone_at((x, 250))


def _motion(var_x: float, vx: float = 0.0, var_vx: float = 0.01) -> Motion:
    return Motion(4.05, 2.5, var_x, 0.01, vx, 0.0, var_vx, 0.01)


def test_confident_tracker_keeps_the_zone_while_the_filter_doubts_the_crossing() -> None:
    tracker = ZoneTracker(PLAN, hysteresis_px=0.0, confidence=0.8)
    assert tracker.update(300, 250, motion=_motion(0.01)).name == "left"
    # 10 cm past the edge, sd 15 cm across it: P(right) ~0.75 < 0.8, so still left.
    assert tracker.update(410, 250, motion=_motion(0.15 ** 2)).name == "left"
    # 15 cm past with the same doubt: P(right) ~0.84, switched.
    assert tracker.update(415, 250, motion=_motion(0.15 ** 2)).name == "right"


def test_confident_tracker_switches_at_once_when_the_walker_is_plainly_leaving() -> None:
    tracker = ZoneTracker(PLAN, hysteresis_px=0.0, confidence=0.8)
    tracker.update(300, 250)
    # Same doubt as above, but walking out at 0.8 m/s with a velocity sd of 0.1 m/s (8 sigmas).
    assert tracker.update(410, 250, motion=_motion(0.15 ** 2, vx=0.8, var_vx=0.01)).name == "right"
    # Walking back into "left" slowly does not count as leaving "right": the doubt holds it.
    assert tracker.update(395, 250, motion=_motion(0.15 ** 2, vx=-0.05, var_vx=0.01)).name == "right"


def test_confident_tracker_without_motion_or_confidence_is_the_fixed_dead_band() -> None:
    plain, confident = ZoneTracker(PLAN, hysteresis_px=25.0), ZoneTracker(PLAN, hysteresis_px=25.0, confidence=0.8)
    for x in (300, 410, 399, 430, 390, 100):
        assert confident.update(x, 250) == plain.update(x, 250, motion=_motion(1.0))
    # The fixed band stays a floor when the filter is surer than it.
    assert confident.update(410, 250, motion=_motion(1e-6)).name == "left"


@pytest.mark.parametrize("confidence", [0.4, 1.0, math.nan])
def test_confidence_must_be_a_probability_of_at_least_one_half(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        ZoneTracker(PLAN, confidence=confidence)


@pytest.mark.parametrize(("polygon", "rectangle"), [
    (((0, 0), (400, 0), (400, 500), (0, 500)), True),
    (((400, 500), (0, 500), (0, 0), (400, 0)), True),  # any starting corner, either direction
    (((0, 0), (400, 500), (400, 0), (0, 500)), False),  # the same corners as a bow tie
    (((0, 0), (400, 0), (0, 500)), False),
    (((0, 0), (400, 0), (400, 250), (0, 500)), False),
    (((0, 0), (0, 0), (0, 500), (0, 500)), False),  # no area
])
def test_only_a_true_rectangle_takes_the_bounding_box_shortcut(polygon: tuple, rectangle: bool) -> None:
    assert _is_rectangle(Zone("z", "c", polygon)) is rectangle


def test_zone_tracker_contains_is_zone_contains_on_edges_and_corners() -> None:
    # The tracker tests rectangles by their bounding box; it must agree with Zone.contains everywhere.
    zones = (*PLAN.zones, Zone("bow", "c", ((0, 0), (400, 500), (400, 0), (0, 500))),
             Zone("tri", "c", ((100, 100), (900, 100), (500, 450))))
    tracker = ZoneTracker(Plan(1000, 500, 0.01, zones))
    rng = random.Random(3)
    grid = [0, 100, 250, 399.999, 400, 400.001, 450, 500, 900, 1000]
    points = [(x, y) for x in grid for y in grid]
    points += [(rng.uniform(-10, 1010), rng.uniform(-10, 510)) for _ in range(2000)]
    for zone in zones:
        for p in points:
            assert tracker._contains(zone, p) == zone.contains(p), (zone.name, p)
    for p in points:
        assert tracker._zone_at(p) == tracker.plan.zone_at(p)


def test_zone_tracker_outside_every_zone_is_none_and_rejects_nan() -> None:
    tracker = ZoneTracker(PLAN)
    assert tracker.update(2000, 2000) is None
    with pytest.raises(BadReading):
        tracker.update(math.nan, 3)


def test_fixed_lag_smoothing_beats_the_live_estimate_and_matches_it_at_lag_zero() -> None:
    rng = random.Random(9)
    f = MotionFilter(keep_steps=21)
    live_err, truth = [], []
    for t in range(40):
        x = 0.3 * t * 0.5
        truth.append(x)
        est = f.update(t * 0.5, x + rng.gauss(0, 0.4), 1.0 + rng.gauss(0, 0.4), 0.57)
        live_err.append(abs(est.x_m - x))
    assert f.smoothed(0) == f.estimate
    lagged_err = [abs(f.smoothed(back).x_m - truth[39 - back]) for back in range(1, 20)]
    assert sum(lagged_err) / len(lagged_err) < sum(live_err[20:39]) / 19
    assert MotionFilter().smoothed(3) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=-1e9, max_value=1e9), st.floats(min_value=-150.0, max_value=20.0)),
                min_size=1, max_size=40))
def test_smoothed_rssi_stays_within_the_readings(readings: list[tuple[float, float]]) -> None:
    s = RssiSmoother(half_life_s=2.0, outlier_db=6.0)
    for ts, rssi in readings:
        value = s.update(ts, rssi)
        assert math.isfinite(value)
    lo, hi = min(r for _, r in readings), max(r for _, r in readings)
    assert lo - 1e-6 <= s.value <= hi + 1e-6
