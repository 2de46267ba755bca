"""Exact geometry cases and input rejection for the multilateration solver."""

from __future__ import annotations

import math

import pytest

from agent.errors import BadReading
from agent.positioning.calibration import LogDistanceModel
from agent.positioning.multilateration import (
    Anchor,
    Estimate,
    _mean_inside,
    anchor_terms,
    check_anchors,
    columns,
    locate,
    solve,
    solve_checked,
)

BOUNDS = (0.0, 0.0, 6.0, 4.0)
CORNERS = [(0.2, 3.8), (0.2, 0.2), (5.8, 3.8), (5.8, 0.2)]
MODEL = LogDistanceModel(-59.0, 3.0, 2.5)


def anchors_for(x: float, y: float, receivers: list[tuple[float, float]] = CORNERS) -> list[Anchor]:
    out = []
    for ax, ay in receivers:
        d = max(0.1, math.hypot(x - ax, y - ay))
        out.append(Anchor(ax, ay, d, MODEL.sigma_m(d)))
    return out


@pytest.mark.parametrize("point", [(1.0, 1.0), (3.0, 2.0), (4.5, 3.1), (5.5, 0.5), (0.4, 3.5)])
def test_exact_distances_give_the_exact_point(point: tuple[float, float]) -> None:
    est = locate(anchors_for(*point), BOUNDS)
    assert math.hypot(est.x_m - point[0], est.y_m - point[1]) < 0.02
    assert 0 < est.accuracy_m < 1.0


def test_device_at_a_receiver() -> None:
    est = locate(anchors_for(0.2, 0.2), BOUNDS)
    assert math.hypot(est.x_m - 0.2, est.y_m - 0.2) < 0.05


def test_equidistant_point_is_the_centre() -> None:
    est = locate(anchors_for(3.0, 2.0), BOUNDS)
    assert est.x_m == pytest.approx(3.0, abs=1e-3)
    assert est.y_m == pytest.approx(2.0, abs=1e-3)


def test_collinear_receivers_on_the_line_is_exact_and_off_the_line_is_honest() -> None:
    line = [(1.0, 2.0), (3.0, 2.0), (5.0, 2.0)]
    on = locate(anchors_for(2.2, 2.0, line), BOUNDS)
    assert math.hypot(on.x_m - 2.2, on.y_m - 2.0) < 0.02
    off = locate(anchors_for(2.2, 3.2, line), BOUNDS)
    # Mirror images across the line are indistinguishable: either is fine, but the radius must say so.
    err = min(math.hypot(off.x_m - 2.2, off.y_m - 3.2), math.hypot(off.x_m - 2.2, off.y_m - 0.8))
    assert err < 0.3 or off.accuracy_m >= 1.0


def test_all_receivers_far_away_stays_in_bounds_with_a_large_radius() -> None:
    anchors = [Anchor(x, y, 60.0, MODEL.sigma_m(60.0)) for x, y in CORNERS]
    est = locate(anchors, BOUNDS)
    assert 0.0 <= est.x_m <= 6.0 and 0.0 <= est.y_m <= 4.0
    assert est.accuracy_m > 5.0


def test_one_anchor_is_its_position_with_accuracy_the_distance() -> None:
    est = locate([Anchor(1.0, 2.0, 3.5, 0.7)], BOUNDS)
    assert (est.x_m, est.y_m, est.accuracy_m) == (1.0, 2.0, 3.5)


def test_two_anchors_split_the_baseline_with_a_large_radius() -> None:
    est = locate([Anchor(1.0, 2.0, 1.0, 0.2), Anchor(5.0, 2.0, 3.0, 0.6)], BOUNDS)
    assert est.x_m == pytest.approx(2.0) and est.y_m == pytest.approx(2.0)
    assert est.accuracy_m >= 1.0


def test_one_blocked_receiver_does_not_drag_the_estimate() -> None:
    anchors = anchors_for(2.0, 1.5)
    blocked = anchors[2]
    anchors[2] = Anchor(blocked.x_m, blocked.y_m, blocked.distance_m * 1.8, MODEL.sigma_m(blocked.distance_m * 1.8))
    est = locate(anchors, BOUNDS)
    assert math.hypot(est.x_m - 2.0, est.y_m - 1.5) < 0.35


def test_prior_pulls_an_ambiguous_fix() -> None:
    anchors = anchors_for(3.0, 2.0)[:2]  # two receivers: ambiguous on their own
    est = locate(anchors, BOUNDS, prior=Estimate(0.5, 2.0, 0.2))
    assert est.x_m < 1.5


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("field", ["x_m", "y_m", "distance_m", "sigma_m"])
def test_non_finite_values_are_bad_readings(field: str, bad: float) -> None:
    fields = {"x_m": 1.0, "y_m": 1.0, "distance_m": 2.0, "sigma_m": 0.4, field: bad}
    anchors = [Anchor(**fields), *anchors_for(3.0, 2.0)[1:]]
    with pytest.raises(BadReading):
        locate(anchors, BOUNDS)


def test_empty_negative_and_bad_bounds_are_bad_readings() -> None:
    with pytest.raises(BadReading):
        locate([], BOUNDS)
    with pytest.raises(BadReading):
        locate([Anchor(1, 1, -1.0, 0.3)], BOUNDS)
    with pytest.raises(BadReading):
        locate([Anchor(1, 1, 1.0, 0.0)], BOUNDS)
    with pytest.raises(BadReading):
        locate(anchors_for(3.0, 2.0), (6.0, 0.0, 0.0, 4.0))
    with pytest.raises(BadReading):
        locate(anchors_for(3.0, 2.0), (0.0, 0.0, math.nan, 4.0))


def test_position_estimates_as_anchors_average_by_their_accuracy() -> None:
    # The aggregator passes an agent's own estimate as distance ~0 with sigma = its accuracy.
    two = locate([Anchor(1.0, 1.0, 0.1, 1.0), Anchor(3.0, 1.0, 0.1, 1.0)], BOUNDS)
    assert two.x_m == pytest.approx(2.0, abs=0.1) and two.y_m == pytest.approx(1.0, abs=0.1)
    three = locate([Anchor(1.0, 1.0, 0.1, 1.0), Anchor(3.0, 1.0, 0.1, 1.0), Anchor(2.0, 3.0, 0.1, 1.0)], BOUNDS)
    assert three.x_m == pytest.approx(2.0, abs=0.1) and three.y_m == pytest.approx(5.0 / 3.0, abs=0.15)
    near = locate([Anchor(1.0, 1.0, 0.1, 0.3), Anchor(3.0, 1.0, 0.1, 3.0)], BOUNDS)
    assert near.x_m < 1.3
    alone = locate([Anchor(1.0, 1.0, 0.1, 2.5)], BOUNDS)
    assert alone.accuracy_m == pytest.approx(2.5)


def test_a_lone_fix_beyond_a_wall_comes_back_inside_by_its_uncertainty() -> None:
    # Exact distances to a point 0.5 m beyond the south wall: the best fit inside the plan is on the
    # wall; locate() reports the mean of the fit inside the plan instead (posterior mean, flat prior).
    anchors = anchors_for(3.0, -0.5)
    on_wall = solve(anchors, BOUNDS).estimate
    assert on_wall.y_m == 0.0
    est = locate(anchors, BOUNDS)
    assert 0.0 < est.y_m < on_wall.accuracy_m
    assert est.x_m == pytest.approx(on_wall.x_m)
    assert est.accuracy_m == on_wall.accuracy_m


def test_fixes_inside_the_plan_and_the_locator_fix_are_not_moved() -> None:
    anchors = anchors_for(1.0, 1.0)
    assert locate(anchors, BOUNDS) == solve(anchors, BOUNDS).estimate
    # With a prior (the Locator's first solve) the prior already keeps the fit off the wall.
    far = anchors_for(3.0, -0.5)
    prior = Estimate(3.0, 0.3, 0.5)
    assert solve(far, BOUNDS, prior=prior, edge_mean=True) == solve(far, BOUNDS, prior=prior)


def _numeric_mean_inside(mu: float, sd: float, lo: float, hi: float, steps: int = 20_000) -> float:
    xs = [lo + (hi - lo) * (k + 0.5) / steps for k in range(steps)]
    ws = [math.exp(-0.5 * ((x - mu) / sd) ** 2) for x in xs]
    return sum(w * x for w, x in zip(ws, xs, strict=True)) / sum(ws)


@pytest.mark.parametrize(("mu", "sd"), [(-0.5, 0.8), (0.0, 0.3), (2.0, 1.0), (4.6, 0.4), (-3.0, 0.5), (1.0, 50.0)])
def test_mean_inside_is_the_truncated_gaussian_mean(mu: float, sd: float) -> None:
    assert _mean_inside(mu, sd, 0.0, 4.0) == pytest.approx(_numeric_mean_inside(mu, sd, 0.0, 4.0), abs=2e-3)


def test_mean_inside_far_outside_stays_finite_and_on_the_near_side() -> None:
    near_lo = _mean_inside(-1e4, 0.5, 0.0, 4.0)
    assert 0.0 <= near_lo < 1e-3
    near_hi = _mean_inside(1e4, 0.5, 0.0, 4.0)
    assert 4.0 - 1e-3 < near_hi <= 4.0
    assert _mean_inside(math.inf, 0.5, 0.0, 4.0) == 2.0
    assert _mean_inside(-1.0, 0.5, 2.0, 2.0) == 2.0


@pytest.mark.parametrize("anchors", [
    [Anchor(1.0, 2.0, 3.0, 0.5), Anchor(4.0, 1.0, 0.02, 0.3)],  # a distance below the 0.1 m floor
    [Anchor(1, 2, 3, 1), Anchor(True, 0.5, 2.0, 0.4)],  # ints and a bool: converted like float()
    [Anchor(-1e6, 1e6, 1e6, 1e6)],  # the limits themselves are allowed
])
def test_columns_are_check_anchors_in_columns(anchors: list[Anchor]) -> None:
    # columns() takes a fast path for plain floats; both paths must agree with check_anchors.
    checked = check_anchors(anchors)
    xs, ys, ds, ss = columns(anchors)
    assert [(a.x_m, a.y_m, a.distance_m, a.sigma_m) for a in checked] == list(zip(xs, ys, ds, ss, strict=True))
    assert all(type(v) is float for col in (xs, ys, ds, ss) for v in col)


@pytest.mark.parametrize("bad", [
    Anchor(math.nan, 1.0, 1.0, 1.0), Anchor(1.0, 1.0, math.inf, 1.0), Anchor(1.0, -2e6, 1.0, 1.0),
    Anchor(1.0, 1.0, -0.5, 1.0), Anchor(1.0, 1.0, 1.0, 0.0), Anchor(1.0, 1.0, 1.0, -1.0), Anchor("x", 1.0, 1.0, 1.0),
])
def test_columns_reject_what_check_anchors_rejects_with_its_message(bad: Anchor) -> None:
    anchors = [Anchor(0.0, 0.0, 1.0, 0.3), bad]
    with pytest.raises(BadReading) as expected:
        check_anchors(anchors)
    with pytest.raises(BadReading) as got:
        columns(anchors)
    assert str(got.value) == str(expected.value)
    with pytest.raises(BadReading, match="at least one"):
        columns([])


def test_solve_checked_is_solve_without_the_checks() -> None:
    anchors = anchors_for(2.0, 1.5)
    for prior, weights in ((None, None), (Estimate(2.5, 1.0, 0.4), None), (None, [1.0, 0.5, 1.0, 0.2])):
        sol = solve(anchors, BOUNDS, prior=prior, weights=weights)
        p = None if prior is None else (prior.x_m, prior.y_m, prior.accuracy_m)
        cols = columns(anchors)
        expected = (sol.estimate.x_m, sol.estimate.y_m, sol.estimate.accuracy_m, sol.weights, sol.cov)
        assert solve_checked(cols, BOUNDS, prior=p, weights=weights) == expected
        assert solve_checked(cols, BOUNDS, prior=p, weights=weights, terms=anchor_terms(cols)) == expected


def test_covariance_at_the_posterior_is_the_fits_own_when_the_prediction_knows_nothing() -> None:
    cols = columns(anchors_for(4.2, 2.3))
    own = solve_checked(cols, BOUNDS)
    vague = solve_checked(cols, BOUNDS, linearize_at=(1.0, 1.0, 1e12, 1e12))
    assert vague[:2] == own[:2] and vague[3] == own[3]
    assert vague[2] == pytest.approx(own[2], rel=1e-9)
    assert vague[4] == pytest.approx(own[4], rel=1e-6)


def test_covariance_at_the_posterior_takes_the_geometry_where_the_update_lands() -> None:
    # A fix at the middle, a confident prediction by the south-west receiver: the update lands there,
    # so the fix counts with the geometry of that place (exact distances: chi^2 0 in both fits, and
    # the relative sigma is the same for every anchor, so the geometry is all that differs).
    middle = columns(anchors_for(3.0, 2.0))
    x, y, _, _, at_fit = solve_checked(middle, BOUNDS)
    there_x, there_y, _, _, there = solve_checked(columns(anchors_for(0.6, 0.6)), BOUNDS)
    landed = solve_checked(middle, BOUNDS, linearize_at=(there_x, there_y, 1e-12, 1e-12))
    assert landed[:2] == (x, y)  # the fit itself does not move
    assert landed[4] == pytest.approx(there, rel=1e-3)  # the fit there stops ~1 cm short: chi^2 ~0, not 0
    assert landed[4] != pytest.approx(at_fit, rel=0.1)
