"""``floorwalker-chain stream`` on a copy of the fixture: days close as the watermark passes them, a store
shipping 6 h late still lands in its day, and a row behind the watermark is written to ``late``.
Marked slow: a Flink streaming job, minutes on a loaded machine."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from tests.chain.conftest import read_rows
from tests.conftest import REPO

pytestmark = pytest.mark.slow
FIXTURE = REPO / "tests/fixtures/chain"
TZ = ZoneInfo("Europe/Warsaw")


def _rows(out: Path, name: str) -> list[dict]:
    rows: list[dict] = []
    for p in sorted((out / name).glob("*")) if (out / name).is_dir() else []:
        if p.is_file() and not p.name.startswith((".", "_")):
            rows.extend(orjson.loads(line) for line in p.read_bytes().splitlines() if line)
    return rows


def _wait(predicate: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the stream job exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout_s} s:\n{log.read_text()[-2000:]}")
        time.sleep(1.0)


def _ship(chain: Path, name: str, ended: datetime) -> dict:
    """A visit of store-001 ending at ``ended`` (local), shipped as a part file of its own."""
    end_ms = int(ended.timestamp() * 1000)
    row = {"store": "store-001", "visit": f"late-{name}", "person": f"p-{name}", "customer": False,
           "start_ms": end_ms - 600_000, "end_ms": end_ms, "duration_s": 600.0, "passerby": False,
           "date": ended.date().isoformat(), "hour": ended.hour, "seq": 10**9}
    part = chain / "visits/store=store-001" / f"date={row['date']}" / f"hour={ended.hour:02d}" / f"part-{name}.jsonl"
    part.parent.mkdir(parents=True, exist_ok=True)
    tmp = part.with_name("." + part.name)
    tmp.write_bytes(orjson.dumps(row) + b"\n")
    os.replace(tmp, part)
    return row


@pytest.fixture
def stream_job(tmp_path: Path) -> Iterator[tuple[Path, Path, subprocess.Popen[bytes], Path]]:
    chain, out, log = tmp_path / "chain", tmp_path / "out", tmp_path / "stream.log"
    shutil.copytree(FIXTURE, chain)
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "aggregator.chain.cli", "stream", "--chain-dir", str(chain),
                                 "--out", str(out), "--timezone", "Europe/Warsaw", "--checkpoint-s", "2"],
                                cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield chain, out, proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _ended_on(row: dict) -> str:
    return datetime.fromtimestamp(row["end_ms"] / 1000, TZ).date().isoformat()


@pytest.mark.timeout(1800)
def test_late_store_lands_in_its_day_and_later_rows_are_counted(stream_job) -> None:  # type: ignore[no-untyped-def]
    chain, out, proc, log = stream_job
    fixture = read_rows(FIXTURE, "visits")
    last_end = max(v["end_ms"] for v in fixture) / 1000
    # The fixture is a backlog read in no particular file order: its rows behind the watermark go to
    # `late`. Wait until the first days' windows closed (midnight + 7 h behind the newest visit).
    _wait(lambda: any(r["store"] == "*" and r["date"] == "2026-03-09" for r in _rows(out, "stream_daily")), proc, log)
    # A store 6 h behind the newest visit: inside the 7 h watermark, so it must count in its day.
    six_h_late = _ship(chain, "six-hours", datetime.fromtimestamp(last_end - 6 * 3600, TZ))
    # Two days behind: its window is long closed, so it must show up in `late`, not vanish.
    too_late = _ship(chain, "two-days", datetime(2026, 3, 8, 12, 0, tzinfo=TZ))
    _wait(lambda: any(r["visit"] == too_late["visit"] for r in _rows(out, "late")), proc, log)
    # A visit a day later moves the watermark past the 6-h-late visit's day: that window closes.
    _ship(chain, "next-day", datetime.fromtimestamp(last_end + 24 * 3600, TZ))
    day = _ended_on(six_h_late)
    _wait(lambda: any(r["store"] == "store-001" and r["date"] == day for r in _rows(out, "stream_daily")),
          proc, log)
    late = _rows(out, "late")
    assert six_h_late["visit"] not in {r["visit"] for r in late}
    # Nothing lost: per store and day (by end), the window's visits plus the late ones are all of them.
    shipped = [*fixture, six_h_late, too_late]
    daily = {(r["store"], r["date"]): r for r in _rows(out, "stream_daily")}
    late_ids = {r["visit"] for r in late}
    for store, day_ in sorted({(k[0], k[1]) for k in daily if k[0] != "*"}):
        mine = [v for v in shipped if v["store"] == store and _ended_on(v) == day_ and not v["passerby"]]
        counted = [v for v in mine if v["visit"] not in late_ids]
        assert daily[(store, day_)]["visits"] == len(counted), (store, day_)
    assert daily[("store-001", day)]["visits"] >= 1
