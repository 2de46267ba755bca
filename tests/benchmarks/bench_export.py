"""``floorwalker-aggregator export``: rows per second in each format, and memory that does not grow with the rows.

The command runs as a subprocess (as a user runs it) on a database of N sightings made here; its
peak RSS (``ru_maxrss`` of the child) is measured for a small and a 4-10 times larger database. A
streamed export keeps the two close; one that held the rows would grow with them.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from aggregator.store import create_schema
from tests.benchmarks.figures import Figure

REPO = Path(__file__).resolve().parents[2]


def _fill(path: Path, n: int) -> None:
    create_schema(path)
    rng = random.Random(1)
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO sightings (ts, visitor, device, visit_id, x, y, accuracy_m, zone) VALUES (?,?,?,?,?,?,?,?)",
            ((1_796_000_000 + i * 0.5, f"d-{i % 5000:010x}", f"d-{i % 5000:010x}", f"gen-{i // 40}",
              rng.uniform(0, 1808), rng.uniform(0, 1315), rng.uniform(0.3, 4), "Sport") for i in range(n)))
    conn.close()


def _export(db: Path, fmt: str, out: Path) -> tuple[float, float]:
    """Seconds and this child's own peak RSS in MB (os.wait4 returns the rusage of that one process)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "aggregator.cli", "export", "--db", str(db), "--what",
                             "sightings", "--format", fmt, "--out", str(out)], cwd=REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed_s = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"export exited {proc.returncode}")
    return elapsed_s, usage.ru_maxrss / 1024  # kB on Linux


def run(args: argparse.Namespace) -> Iterator[Figure]:
    # both several batches (BATCH_ROWS = 50,000), so the second only has more of them
    small, large = (100_000, 400_000) if args.quick else (200_000, 2_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        dbs = {}
        for n in (small, large):
            dbs[n] = Path(tmp) / f"s{n}.db"
            _fill(dbs[n], n)
        rss: dict[int, float] = {}
        for n in (small, large):
            _, rss[n] = _export(dbs[n], "parquet", Path(tmp) / f"s{n}.parquet")
        for fmt in ("csv", "jsonl", "parquet"):
            out = Path(tmp) / f"large.{fmt}"
            elapsed_s, _ = _export(dbs[large], fmt, out)
            yield Figure(f"export.sightings_{fmt}_rows_per_s", round(large / elapsed_s), "rows/s",
                         note=f"{large:,} rows, {os.path.getsize(out) / 1e6:.0f} MB file, process start included")
        yield Figure(f"export.peak_rss_mb_{small // 1000}k_rows", round(rss[small], 1), "MB")
        yield Figure(f"export.peak_rss_mb_{large // 1000}k_rows", round(rss[large], 1), "MB")
        yield Figure(f"export.rss_growth_for_{large // small}x_rows", round(rss[large] - rss[small], 1), "MB",
                     target="<= 20")
