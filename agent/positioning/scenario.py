"""The ESPresense-companion reference scenario, reproduced as its README describes, and our scoring.

Used by the accuracy benchmark (tests/benchmarks/bench_positioning.py) and by the regression test.
How a sample is synthesised (their harness, ``reference/positioning/README.md``):

* samples evenly spaced along each segment of a track, ``samples_per_segment`` per segment, the
  end point included (61 and 121 samples);
* true distance = horizontal (2-D) distance from the receiver's (x, y); the 2.4 m mounting height
  does not enter it;
* true RSSI from ``d = 10 ** ((rssi_at_1m - rssi) / (10 n))`` with the station's cal_rssi and
  absorption (-59, 3.0); noise in dB: Gaussian sigma 2.5 dB plus -6 dB on 10 % of samples;
* measured distance from the same formula, floored at 0.1 m;
* error in 2-D; rooms are inclusive rectangles, the first declared room wins on a shared edge.

What they do not say is *when* the samples are taken. Our motion filter needs time, so the
sampling interval is an explicit, reported assumption (``interval_s``), never fitted to the data.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.geometry import Plan, Zone
from agent.positioning.calibration import LogDistanceModel
from agent.positioning.locator import Locator
from agent.positioning.multilateration import Anchor, Bounds, locate
from agent.positioning.zones import ZoneTracker

SIGMA_DB = 2.5
MULTIPATH_DB = -6.0
MULTIPATH_SHARE = 0.10
PUBLISHED_SEED = 20260530


@dataclass(frozen=True)
class Station:
    id: str
    x_m: float
    y_m: float
    model: LogDistanceModel


@dataclass(frozen=True)
class Room:
    name: str
    x0: float
    y0: float
    x1: float
    y1: float

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1


@dataclass(frozen=True)
class Scenario:
    name: str
    bounds_m: Bounds
    rooms: tuple[Room, ...]
    stations: tuple[Station, ...]
    tracks: dict[str, list[tuple[float, float]]]  # track name -> ground-truth samples

    def plan(self) -> Plan:
        """The rooms as a plan in centimetre pixels, for the ZoneTracker."""
        zones = tuple(Zone(r.name, "room", ((r.x0 * 100, r.y0 * 100), (r.x1 * 100, r.y0 * 100),
                                            (r.x1 * 100, r.y1 * 100), (r.x0 * 100, r.y1 * 100)))
                      for r in self.rooms)
        return Plan(int(self.bounds_m[2] * 100), int(self.bounds_m[3] * 100), 0.01, zones)

    def room_of(self, x: float, y: float) -> str | None:
        for room in self.rooms:
            if room.contains(x, y):
                return room.name
        return None


def load(path: str | Path) -> Scenario:
    data = json.loads(Path(path).read_text())
    b = data["bounds"]
    stations = tuple(Station(s["id"], float(s["x"]), float(s["y"]),
                             LogDistanceModel(float(s["cal_rssi"]), float(s["absorption"])))
                     for s in data["stations"])
    rooms = tuple(Room(r["name"], r["x_min"], r["y_min"], r["x_max"], r["y_max"]) for r in data["rooms"])
    tracks = {t["name"]: track_samples(t["points"], int(t["samples_per_segment"])) for t in data["tracks"]}
    return Scenario(data["name"], (b["x_min"], b["y_min"], b["x_max"], b["y_max"]), rooms, stations, tracks)


def track_samples(points: Sequence[Sequence[float]], per_segment: int) -> list[tuple[float, float]]:
    """``per_segment`` evenly spaced samples on each segment, plus the final end point."""
    out: list[tuple[float, float]] = []
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        for k in range(per_segment):
            t = k / per_segment
            out.append((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
    out.append((float(points[-1][0]), float(points[-1][1])))
    return out


def measure(scenario: Scenario, truth: Sequence[tuple[float, float]], rng: random.Random,
            ) -> list[list[float]]:
    """Measured distances (one list per sample, one value per station) with their noise model."""
    out = []
    for x, y in truth:
        row = []
        for s in scenario.stations:
            d = math.hypot(x - s.x_m, y - s.y_m)
            rssi = s.model.rssi_at_1m - 10.0 * s.model.n * math.log10(d) if d > 0 else s.model.rssi_at_1m + 60
            rssi += rng.gauss(0.0, SIGMA_DB)
            if rng.random() < MULTIPATH_SHARE:
                rssi += MULTIPATH_DB
            row.append(max(0.1, 10 ** ((s.model.rssi_at_1m - rssi) / (10.0 * s.model.n))))
        out.append(row)
    return out


@dataclass(frozen=True)
class Score:
    median_m: float
    p95_m: float
    mean_m: float
    max_m: float
    misid_pct: float
    samples: int

    @classmethod
    def of(cls, errors: Sequence[float], wrong_rooms: int) -> Score:
        ordered = sorted(errors)
        return cls(statistics.median(ordered), percentile(ordered, 95.0), statistics.fmean(ordered),
                   ordered[-1], 100.0 * wrong_rooms / len(ordered), len(ordered))


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Linear-interpolation percentile (numpy's default) of an ascending sequence."""
    pos = (len(ordered) - 1) * pct / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


ModelFor = Callable[[Station], LogDistanceModel]


def _anchors(scenario: Scenario, row: Sequence[float], use: Sequence[int], model_for: ModelFor) -> list[Anchor]:
    out = []
    for i in use:
        s = scenario.stations[i]
        out.append(Anchor(s.x_m, s.y_m, row[i], model_for(s).sigma_m(row[i])))
    return out


def default_model(station: Station) -> LogDistanceModel:
    """The locator knows each station's calibration (-59, 3.0), not the simulator's noise level."""
    return LogDistanceModel(station.model.rssi_at_1m, station.model.n)


def run_track(scenario: Scenario, track: str, seed: int, *, interval_s: float = 1.0, filtered: bool = True,
              drop: int | None = None, model_for: ModelFor = default_model,
              locator_factory: Callable[[Bounds], Locator] | None = None, lag_steps: int = 0,
              hysteresis_m: float | None = None, zone_confidence: float | None = None) -> Score:
    """Score one track for one noise seed: every sample alone, or along the track with the filter.

    ``lag_steps`` > 0 scores the fixed-lag smoothed position instead: sample k is judged once
    sample k + lag_steps has arrived (the last ones at the end of the track). ``hysteresis_m``
    decides the room with a ZoneTracker of that dead band instead of the estimate's own room;
    ``zone_confidence`` (with the filter) with a ZoneTracker that leaves a room once the filter
    puts that much probability outside it (dead band ``hysteresis_m``, default 0, at least).
    """
    if lag_steps:
        return _run_lagged(scenario, track, seed, interval_s, drop, model_for, lag_steps)
    truth = scenario.tracks[track]
    rows = measure(scenario, truth, random.Random(f"{seed}:{track}"))
    use = [i for i in range(len(scenario.stations)) if i != drop]
    locator = (locator_factory or Locator)(scenario.bounds_m) if filtered else None
    tracker = None
    if hysteresis_m is not None or (zone_confidence is not None and locator is not None):
        tracker = ZoneTracker(scenario.plan(), hysteresis_px=(hysteresis_m or 0.0) * 100,
                              confidence=zone_confidence if locator is not None else None)
    errors: list[float] = []
    wrong = 0
    for k, ((tx, ty), row) in enumerate(zip(truth, rows, strict=True)):
        anchors = _anchors(scenario, row, use, model_for)
        est = locator.update(k * interval_s, anchors) if locator else locate(anchors, scenario.bounds_m)
        errors.append(math.hypot(est.x_m - tx, est.y_m - ty))
        if tracker is not None:
            zone = tracker.update(est.x_m * 100, est.y_m * 100, motion=locator.motion if locator else None)
            wrong += (zone.name if zone else None) != scenario.room_of(tx, ty)
        else:
            wrong += scenario.room_of(est.x_m, est.y_m) != scenario.room_of(tx, ty)
    return Score.of(errors, wrong)


def median_score(scores: Sequence[Score]) -> Score:
    """Median over seeds of each statistic (median of medians, median of p95s, ...)."""
    med = statistics.median
    return Score(med(s.median_m for s in scores), med(s.p95_m for s in scores), med(s.mean_m for s in scores),
                 med(s.max_m for s in scores), med(s.misid_pct for s in scores), scores[0].samples)


def _run_lagged(scenario: Scenario, track: str, seed: int, interval_s: float, drop: int | None,
                model_for: ModelFor, lag_steps: int) -> Score:
    truth = scenario.tracks[track]
    rows = measure(scenario, truth, random.Random(f"{seed}:{track}"))
    use = [i for i in range(len(scenario.stations)) if i != drop]
    locator = Locator(scenario.bounds_m, lag_steps=lag_steps)
    estimates: list = []
    for k, row in enumerate(rows):
        locator.update(k * interval_s, _anchors(scenario, row, use, model_for))
        if k >= lag_steps:
            estimates.append(locator.smoothed(lag_steps))
    for back in range(min(lag_steps, len(rows)) - 1, -1, -1):
        estimates.append(locator.smoothed(back))
    errors, wrong = [], 0
    for (tx, ty), est in zip(truth, estimates, strict=True):
        errors.append(math.hypot(est.x_m - tx, est.y_m - ty))
        wrong += scenario.room_of(est.x_m, est.y_m) != scenario.room_of(tx, ty)
    return Score.of(errors, wrong)
