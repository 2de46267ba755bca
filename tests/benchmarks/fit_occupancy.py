"""How docs/OCCUPANCY.md's fitted occupancy parameters were chosen, with leave-one-day-out figures.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/fit_occupancy.py

Each shared Brno day's files (labels blanked, as bench_occupancy.py does) are replayed once through
the agent's pipeline in-process, recording the sightings ``replay --occupancy`` hands the estimator;
then every point of the grid below is scored on them with bench_occupancy.py's scorer. The chosen
point minimises mae_all / 0.5 + mae_occupied / 2.0 (the targets) over the days used. Leave-one-day-out:
each day's files are scored with the point chosen on the other days, so the figure is what a day the
fit never saw can expect (the unshared labelled days of the same lab are scored with the shipped code).
Only ``random_weight`` and ``factor`` are fitted; everything else is the code's default.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

from agent.commands.replay import _replay, _sniffer_ids
from agent.config import load_device
from agent.occupancy import MinuteOccupancy, OccupancyEstimator
from agent.presence import Sighting
from agent.runtime import CountingSink, Pipeline
from agent.sources.replay import detect_format, read_file
from tests.benchmarks.bench_occupancy import DAYS, DEVICE, Capture, blank_labels, mae

RANDOM_WEIGHTS = (0.0, 0.05, 0.1, 0.2)
FACTORS = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
Point = tuple[float, float]  # (random_weight, factor)


class _Recorder:
    """Stands where replay's MinuteOccupancy goes: keeps the sightings to score many estimators on."""

    def __init__(self) -> None:
        self.sightings: list[Sighting] = []

    def add(self, s: Sighting) -> None:
        self.sightings.append(s)

    def close(self) -> None:
        pass


def day_sightings(files: Sequence[Path]) -> list[Sighting]:
    """One day's files replayed as ``replay --occupancy`` does (the i-th file: the i-th sniffer)."""
    import heapq

    device = load_device(DEVICE)
    pipeline = Pipeline(device, CountingSink(device.agent_id))
    sniffers = _sniffer_ids(device, None, len(files))
    rejected: Counter[str] = Counter()
    streams = [read_file(p, detect_format(p), rejected, sniffer=sniffers[i]) for i, p in enumerate(files)]
    recorder = _Recorder()
    _replay(pipeline, heapq.merge(*streams, key=lambda r: r.ts), 0.0, device.presence.absence_s,
            recorder)  # type: ignore[arg-type]
    return recorder.sightings


TUNING: dict[str, float] = {}  # --tuning NAME=VALUE: the other parameters, held fixed (ablations)


def score(sightings: list[Sighting], caps: Sequence[Capture], point: Point) -> list[tuple[float, float | None]]:
    minutes = MinuteOccupancy(OccupancyEstimator(random_weight=point[0], factor=point[1], **TUNING))
    for s in sightings:
        minutes.add(s)
    minutes.close()
    estimate = {start: round(people, 2) for start, people in minutes.rows}
    return [mae(estimate, cap.minute_labels()) for cap in caps]


def _cached(cache: Path | None, day: str, files: Sequence[Path]) -> list[Sighting]:
    """The day's sightings, from ``cache`` (a directory) when replayed before with this code."""
    if cache is None:
        return day_sightings(files)
    path = cache / f"{day}.pickle"
    if path.is_file():
        with open(path, "rb") as fh:
            return pickle.load(fh)  # type: ignore[no-any-return]  # our own file, written just below
    sightings = day_sightings(files)
    cache.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(sightings, fh)
    return sightings


def objective(scores: list[tuple[float, float | None]]) -> float:
    alls = [a for a, _ in scores]
    occ = [o for _, o in scores if o is not None]
    return sum(alls) / len(alls) / 0.5 + (sum(occ) / len(occ) if occ else 0.0) / 2.0


def average(scores: list[tuple[float, float | None]]) -> tuple[float, float]:
    occ = [o for _, o in scores if o is not None]
    return sum(a for a, _ in scores) / len(scores), sum(occ) / len(occ)


def run(cache: Path | None = None) -> Iterator[str]:
    by_day: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(DAYS.glob("*.csv")):
        by_day[p.stem.split("_", 1)[1]].append(p)
    grid = list(itertools.product(RANDOM_WEIGHTS, FACTORS))
    table: dict[str, dict[Point, list[tuple[float, float | None]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for day, files in sorted(by_day.items()):
            blanked = [Path(tmp) / f.name for f in files]
            for src, dst in zip(files, blanked, strict=True):
                blank_labels(src, dst)
            sightings = _cached(cache, day, blanked)
            caps = [Capture(f) for f in files]
            table[day] = {point: score(sightings, caps, point) for point in grid}
    days = sorted(table)

    def best(used: Sequence[str]) -> Point:
        return min(grid, key=lambda pt: objective([s for d in used for s in table[d][pt]]))

    chosen = best(days)
    yield f"in-sample: random_weight {chosen[0]}, factor {chosen[1]}: " \
          "mae_all {:.3f}, mae_occupied {:.3f}".format(*average([s for d in days for s in table[d][chosen]]))
    held: list[tuple[float, float | None]] = []
    for day in days:
        point = best([d for d in days if d != day])
        held += table[day][point]
        yield f"  held out {day}: chose {point}; " + ", ".join(
            f"{a:.3f}/{'-' if o is None else f'{o:.3f}'}" for a, o in table[day][point])
    yield "leave-one-day-out: mae_all {:.3f}, mae_occupied {:.3f}".format(*average(held))
    for point in grid:
        yield f"  grid {point}: mae_all {{:.3f}}, mae_occupied {{:.3f}}".format(
            *average([s for d in days for s in table[d][point]]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="keep each day's replayed sightings here (same code only)")
    parser.add_argument("--tuning", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    for item in args.tuning:
        name, value = item.split("=", 1)
        TUNING[name] = float(value)
    for line in run(args.cache):
        print(line, flush=True)
