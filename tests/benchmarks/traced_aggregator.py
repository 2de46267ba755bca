"""Run ``floorwalker-aggregator`` with tracemalloc on, and write a heap report on every SIGUSR1.

    python tests/benchmarks/traced_aggregator.py OUT_DIR serve --port 8000 --db soak.db

A debugging aid for the soak (``SOAK_TRACEMALLOC=DIR`` in tests/benchmarks/bench_soak.py starts
the aggregator through this script and signals it periodically); never used by the product. Each
report ``OUT_DIR/heap-NN.txt`` holds: traced memory now and at peak, the sizes of the aggregator's
per-shopper, per-device and per-message structures (found through the garbage collector, so no
product code needs a hook), and the allocation lines that grew most since the first report and
since the previous one. ``TRACEMALLOC_FRAMES`` (default 1) sets the traceback depth: deeper is
more telling and slower.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

TOP = 25


def _sized(obj: Any, path: str) -> int | None:
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    if isinstance(obj, int):
        return obj
    try:
        return len(obj)
    except TypeError:
        return None


# (type name, attribute paths whose len() is reported)
WATCHED = {
    "Ingest": ("shoppers", "by_device", "links", "agents", "_recent", "visits.open",
               "fusion.tracks", "dwell._stays", "tier._last_move"),
    "OfferEngine": ("_shoppers", "changed"),
    "OfferService": ("log", "pending_log"),
    "MqttLink": ("_inbox", "_waiting", "_in_flight", "_unacked", "_out"),  # the link's own (no paho client now)
    "Store": ("queue_depth",),
    "EventBus": ("_subs",),
    "Subscription": ("queue._queue",),
    "LocalClock": ("_cache",),
}


def structure_sizes() -> list[str]:
    lines = []
    for obj in gc.get_objects():
        name = type(obj).__name__
        paths = WATCHED.get(name)
        if paths is None:
            continue
        sizes = " ".join(f"{p}={_sized(obj, p)}" for p in paths)
        lines.append(f"{name}@{id(obj):x} {sizes}")
    return sorted(lines)


class Reporter:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.first: tracemalloc.Snapshot | None = None
        self.previous: tracemalloc.Snapshot | None = None
        self.n = 0
        self.started = time.monotonic()

    def report(self, *_: object) -> None:
        snap = tracemalloc.take_snapshot().filter_traces((tracemalloc.Filter(False, tracemalloc.__file__),
                                                          tracemalloc.Filter(False, "<frozen importlib._bootstrap>")))
        current, peak = tracemalloc.get_traced_memory()
        lines = [f"t={time.monotonic() - self.started:.0f}s traced_mb={current / 2**20:.1f} "
                 f"peak_mb={peak / 2**20:.1f}", "", "## structures", *structure_sizes()]
        for title, base in (("since first report", self.first), ("since previous report", self.previous)):
            if base is None:
                continue
            lines += ["", f"## top growth {title}"]
            lines += [str(stat) for stat in snap.compare_to(base, "lineno")[:TOP]]
        lines += ["", "## top allocations now"]
        lines += [str(stat) for stat in snap.statistics("lineno")[:TOP]]
        self.n += 1
        (self.out_dir / f"heap-{self.n:02d}.txt").write_text("\n".join(lines) + "\n")
        if self.first is None:
            self.first = snap
        self.previous = snap


def main() -> int:
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(int(os.environ.get("TRACEMALLOC_FRAMES", "1")))
    reporter = Reporter(out_dir)
    signal.signal(signal.SIGUSR1, reporter.report)  # runs on the main thread: the event loop's
    from aggregator.cli import main as aggregator_main

    return aggregator_main(sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
