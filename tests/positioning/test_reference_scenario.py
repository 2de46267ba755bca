"""Regression of the seeded reference scenario: accuracy, not timing.

Tolerances come from the figures measured (docs/POSITIONING.md): published seed 20260530, one
sample every 0.1 s: diagonal 0.212 m median / 0.423 m p95 / 1.6 % (1 of 61) mis-identified
(0.187 / 0.366 m before 2026-12-01, when each fix's covariance was still taken at the fix);
living_to_bedroom 14.9 % for the room of the filtered point itself, 9.1 % (11 of 121) for the
live zone decision (ZoneTracker with the filter's doubt, confidence 0.8), median over seeds
101..120 6.6 %; one second late (fixed-lag) the boundary track 8.3 %. Each sample alone (lone
fixes that end on a wall report their mean inside the plan, measured 2026-12-01): diagonal
0.460 / 1.008 m (4.9 %), boundary 0.543 / 1.608 m; median over seeds 101..120: diagonal
0.492 / 1.216 m, boundary 0.593 / 1.447 m.
The margins catch a real regression while allowing harmless numeric drift.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agent.positioning import scenario as sc
from agent.positioning.locator import Locator
from agent.positioning.zones import ROOM_CONFIDENCE

SCENARIO = Path("/work/shared/reference/positioning/baseline_4node_6x4m.json")
if not SCENARIO.is_file():
    SCENARIO = Path(__file__).resolve().parents[3] / "shared/reference/positioning/baseline_4node_6x4m.json"


@pytest.fixture(scope="module")
def scenario() -> sc.Scenario:
    return sc.load(SCENARIO)


def test_harness_reproduces_the_published_sampling(scenario: sc.Scenario) -> None:
    assert len(scenario.tracks["diagonal_walk"]) == 61
    assert len(scenario.tracks["living_to_bedroom"]) == 121
    assert scenario.tracks["diagonal_walk"][30] == pytest.approx((3.0, 2.0))
    assert scenario.room_of(4.0, 2.0) == "living"  # shared edge: the first declared room wins


def test_diagonal_walk_with_the_motion_filter(scenario: sc.Scenario) -> None:
    score = sc.run_track(scenario, "diagonal_walk", sc.PUBLISHED_SEED, interval_s=0.1)
    assert score.median_m <= 0.25
    assert score.p95_m <= 0.50
    assert score.misid_pct <= 3.3  # at most 2 of 61 samples in the wrong room


def test_boundary_track_with_the_motion_filter(scenario: sc.Scenario) -> None:
    score = sc.run_track(scenario, "living_to_bedroom", sc.PUBLISHED_SEED, interval_s=0.1)
    assert score.median_m <= 0.25
    assert score.misid_pct <= 17.0  # the room of the filtered point itself


def test_live_zone_decision_meets_the_boundary_target(scenario: sc.Scenario) -> None:
    conf = ROOM_CONFIDENCE
    score = sc.run_track(scenario, "living_to_bedroom", sc.PUBLISHED_SEED, interval_s=0.1, zone_confidence=conf)
    assert score.misid_pct <= 10.0  # 11 of 121 measured; 12 would still be 9.9 %
    seeds = sc.median_score([sc.run_track(scenario, "living_to_bedroom", s, interval_s=0.1, zone_confidence=conf)
                             for s in range(101, 121)])
    assert seeds.misid_pct <= 9.1  # 6.6 % measured (8 of 121); the target is 10
    diagonal = sc.run_track(scenario, "diagonal_walk", sc.PUBLISHED_SEED, interval_s=0.1, zone_confidence=conf)
    assert diagonal.misid_pct <= 3.3  # its single crossing is not made late (1 of 61 measured)


def test_every_sample_alone_is_no_worse_than_the_published_locator(scenario: sc.Scenario) -> None:
    score = sc.run_track(scenario, "diagonal_walk", sc.PUBLISHED_SEED, filtered=False)
    assert score.median_m <= 0.52
    assert score.p95_m <= 1.15
    assert score.misid_pct <= 6.6
    boundary = sc.run_track(scenario, "living_to_bedroom", sc.PUBLISHED_SEED, filtered=False)
    assert boundary.median_m <= 0.60
    # 1.608 m measured against their 1.61 m: too close to pin at 1.61; the wall-clamped solver
    # this replaced gave 1.755 m, which this bound still catches. The seeds below carry the margin.
    assert boundary.p95_m <= 1.66
    assert boundary.misid_pct <= 22.3


def test_every_sample_alone_over_held_out_seeds(scenario: sc.Scenario) -> None:
    seeds = range(101, 111)
    diagonal = sc.median_score([sc.run_track(scenario, "diagonal_walk", s, filtered=False) for s in seeds])
    boundary = sc.median_score([sc.run_track(scenario, "living_to_bedroom", s, filtered=False) for s in seeds])
    assert diagonal.median_m <= 0.55 and diagonal.p95_m <= 1.33
    assert boundary.median_m <= 0.65 and boundary.p95_m <= 1.55


def test_filter_beats_single_samples_over_several_seeds(scenario: sc.Scenario) -> None:
    for track in scenario.tracks:
        seeds = range(101, 106)
        filtered = sc.median_score([sc.run_track(scenario, track, s, interval_s=0.1) for s in seeds])
        single = sc.median_score([sc.run_track(scenario, track, s, filtered=False) for s in seeds])
        # Measured ratios (seeds 101..105): median 0.64 (diagonal) / 0.39, p95 0.44 / 0.30; the
        # lone fixes got better at the walls on 2026-12-01 (0.6 before), the filter did not change.
        assert filtered.median_m < 0.75 * single.median_m
        assert filtered.p95_m < 0.55 * single.p95_m


def test_one_second_late_positions_meet_the_boundary_target(scenario: sc.Scenario) -> None:
    # Measured at seed 20260530 (8.3 %, 9.1 % before 2026-12-01): docs/POSITIONING.md (lag1s figures).
    score = sc.run_track(scenario, "living_to_bedroom", sc.PUBLISHED_SEED, interval_s=0.1, lag_steps=10)
    assert score.misid_pct <= 10.0
    diagonal = sc.run_track(scenario, "diagonal_walk", sc.PUBLISHED_SEED, interval_s=0.1, lag_steps=10)
    assert diagonal.median_m <= 0.25 and diagonal.misid_pct <= 3.3


def test_zone_tracker_without_dead_band_agrees_with_the_room_of_the_estimate(scenario: sc.Scenario) -> None:
    plain = sc.run_track(scenario, "living_to_bedroom", 101, interval_s=0.1)
    tracked = sc.run_track(scenario, "living_to_bedroom", 101, interval_s=0.1, hysteresis_m=0.0)
    assert tracked.misid_pct == plain.misid_pct
    assert scenario.plan().zone_at((400, 200)).name == "living"


def test_the_live_filter_does_not_trail_the_walker_out_of_the_middle(scenario: sc.Scenario) -> None:
    # Mean x error over the boundary track's last 2 s (x 4.76 .. 5.0 m, walking at 0.3 m/s), seeds
    # 101..110: -0.231 m when each fix's covariance was taken at the fix itself (fixes erring towards
    # the well-covered middle counted more), -0.040 m with it taken where the filter's update lands.
    truth = scenario.tracks["living_to_bedroom"]
    errors = []
    for seed in range(101, 111):
        rows = sc.measure(scenario, truth, random.Random(f"{seed}:living_to_bedroom"))
        locator = Locator(scenario.bounds_m)
        for k, ((tx, _), row) in enumerate(zip(truth, rows, strict=True)):
            est = locator.update(k * 0.1, sc._anchors(scenario, row, range(4), sc.default_model))
            if k >= 100:
                errors.append(est.x_m - tx)
    assert sum(errors) / len(errors) > -0.12
