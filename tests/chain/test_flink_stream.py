"""``floorwalker-chain stream`` on the fixture: days close as the watermark passes them, a store shipping
6 h late still lands in its day, a row behind the watermark is written to ``late``, and the streamed
figures equal an independent computation. Marked slow: Flink streaming jobs, minutes on a loaded machine."""

from __future__ import annotations

import contextlib
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


def _visit_row(name: str, ended: datetime) -> dict:
    """A visit of store-001 ending at ``ended`` (local)."""
    end_ms = int(ended.timestamp() * 1000)
    return {"store": "store-001", "visit": f"late-{name}", "person": f"p-{name}", "customer": False,
            "start_ms": end_ms - 600_000, "end_ms": end_ms, "duration_s": 600.0, "passerby": False,
            "date": ended.date().isoformat(), "hour": ended.hour, "seq": 10**9}


def _ship(chain: Path, name: str, ended: datetime) -> dict:
    """A visit of store-001 ending at ``ended`` (local), shipped as a part file of its own."""
    row = _visit_row(name, ended)
    part = chain / "visits/store=store-001" / f"date={row['date']}" / f"hour={ended.hour:02d}" / f"part-{name}.jsonl"
    part.parent.mkdir(parents=True, exist_ok=True)
    tmp = part.with_name("." + part.name)
    tmp.write_bytes(orjson.dumps(row) + b"\n")
    os.replace(tmp, part)
    return row


@contextlib.contextmanager
def _stream(chain: Path, out: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "aggregator.chain.cli", "stream", "--chain-dir", str(chain),
                                 "--out", str(out), "--timezone", "Europe/Warsaw", "--checkpoint-s", "2"],
                                cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def stream_job(tmp_path: Path) -> Iterator[tuple[Path, Path, subprocess.Popen[bytes], Path]]:
    chain, out, log = tmp_path / "chain", tmp_path / "out", tmp_path / "stream.log"
    shutil.copytree(FIXTURE, chain)
    with _stream(chain, out, log) as proc:
        yield chain, out, proc, log


def _ended_on(row: dict) -> str:
    return datetime.fromtimestamp(row["end_ms"] / 1000, TZ).date().isoformat()


@pytest.mark.timeout(1800)
def test_late_store_lands_in_its_day_and_later_rows_are_counted(stream_job) -> None:  # type: ignore[no-untyped-def]
    chain, out, proc, log = stream_job
    fixture = read_rows(FIXTURE, "visits")
    last_end = max(v["end_ms"] for v in fixture) / 1000
    # The fixture is a backlog read in no particular file order: its rows behind the watermark go to
    # `late` (often whole days, when the last day's files come first). Wait until the watermark is past
    # the first day: its window closed, or some row was already late (only closed windows have those).
    _wait(lambda: bool(_rows(out, "late")) or any(r["date"] == "2026-03-08" for r in _rows(out, "stream_daily")),
          proc, log)
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


def _zone_row(name: str, ended: datetime) -> dict:
    """A zone visit of store-001 (in no zone) whose last fix is at ``ended`` (local)."""
    last_ms = int(ended.timestamp() * 1000)
    return {"store": "store-001", "visit": f"late-{name}", "person": f"p-{name}", "zone": None,
            "date": ended.date().isoformat(), "hour": ended.hour, "first_ms": last_ms - 60_000, "last_ms": last_ms,
            "sightings": 2}


def _write_sorted(chain: Path, kind: str, rows: list[dict], key: str) -> None:
    """All ``rows`` as one part file in ``key`` order: the job reads them in that order."""
    part = chain / kind / "store=all/date=all/hour=00/part-sorted.jsonl"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in sorted(rows, key=lambda r: r[key])))


def _expected_stream(visits: list[dict], zone_visits: list[dict], days: set[str]) -> dict[str, dict]:
    """What the streaming job must report from the rows it read in time, per (scope, day), by docs/CHAIN.md:
    visits and dwell by the day they ended; visitors, new/returning, busiest hour and zones from the
    zone visits (a person's previous day is the previous one the job saw)."""
    from tests.chain.reference import DWELL

    daily: dict[tuple[str, str], dict] = {}
    for scope in {v["store"] for v in visits} | {"*"}:
        for day in days:
            mine = [v for v in visits if scope in ("*", v["store"]) and _ended_on(v) == day and not v["passerby"]]
            passing = [v for v in visits if scope in ("*", v["store"]) and _ended_on(v) == day and v["passerby"]]
            row = {"visits": len(mine), "visitors": len({v["person"] for v in mine}),
                   "passerby_visits": len(passing)}
            for name, low, high in DWELL:
                row[name] = sum(1 for v in mine if low <= v["duration_s"] < high)
            daily[(scope, day)] = row
    busiest: dict[tuple[str, str], tuple[int, int]] = {}
    zones: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    loyalty: dict[tuple[str, str], dict] = {}
    for scope in {z["store"] for z in zone_visits} | {"*"}:
        mine = [z for z in zone_visits if scope in ("*", z["store"])]
        days_of: dict[str, set[str]] = {}
        for z in mine:
            days_of.setdefault(z["person"], set()).add(z["date"])
        for day in days:
            today = [z for z in mine if z["date"] == day]
            if not today:
                continue
            per_hour: dict[int, set[str]] = {}
            per_zone: dict[str, set[str]] = {}
            for z in today:
                per_hour.setdefault(z["hour"], set()).add(z["person"])
                if z["zone"]:
                    per_zone.setdefault(z["zone"], set()).add(z["person"])
            top = min(per_hour.items(), key=lambda hp: (-len(hp[1]), hp[0]))
            busiest[(scope, day)] = (top[0], len(top[1]))
            ranked = sorted(((zone, len(p)) for zone, p in per_zone.items()), key=lambda zv: (-zv[1], zv[0]))
            zones[(scope, day)] = [(zone, n, i + 1) for i, (zone, n) in enumerate(ranked)]
            counts = {"visitors": 0, "new_visitors": 0, "returning_visitors": 0, "occasional_visitors": 0}
            for person in {z["person"] for z in today}:
                earlier = [d for d in days_of[person] if d < day]
                counts["visitors"] += 1
                if not earlier:
                    counts["new_visitors"] += 1
                elif (datetime.fromisoformat(day) - datetime.fromisoformat(max(earlier))).days <= 7:
                    counts["returning_visitors"] += 1
                else:
                    counts["occasional_visitors"] += 1
            loyalty[(scope, day)] = counts
    return {"daily": daily, "busiest": busiest, "zones": zones, "loyalty": loyalty}


@pytest.mark.timeout(1800)
def test_stream_metrics_equal_an_independent_computation(tmp_path: Path) -> None:
    """Dwell buckets, new/returning, busiest hour and zone ranking in streaming mode equal a plain-Python
    computation over the fixture. The rows reach the job in end-time order (one file per kind, as a
    chain whose stores ship on time), so none is late; a visit and a zone visit two days after the last
    fixture row close every fixture day's windows."""
    visits, zone_visits = read_rows(FIXTURE, "visits"), read_rows(FIXTURE, "zone_visits")
    days = {z["date"] for z in zone_visits}
    last_ms = max(max(v["end_ms"] for v in visits), max(z["last_ms"] for z in zone_visits))
    future = datetime.fromtimestamp(last_ms / 1000 + 48 * 3600, TZ)
    chain, out, log = tmp_path / "chain", tmp_path / "out", tmp_path / "stream.log"
    _write_sorted(chain, "visits", [*visits, _visit_row("future", future)], "end_ms")
    _write_sorted(chain, "zone_visits", [*zone_visits, _zone_row("future", future)], "last_ms")

    def closed(name: str) -> bool:
        return max(days) in {r["date"] for r in _rows(out, name) if r["store"] == "*"}

    with _stream(chain, out, log) as proc:
        # Windows close in time order: the last fixture day closed means every earlier one did.
        for name in ("stream_daily", "stream_loyalty", "stream_busiest", "stream_zones"):
            _wait(lambda name=name: closed(name), proc, log)  # type: ignore[misc]
        assert _rows(out, "late") == [] and _rows(out, "late_zones") == []
    want = _expected_stream(visits, zone_visits, days)

    daily = {(r["store"], r["date"]): {k: r[k] for k in want["daily"][(r["store"], r["date"])]}
             for r in _rows(out, "stream_daily") if r["date"] in days}
    assert daily == {k: v for k, v in want["daily"].items() if v["visits"] or v["passerby_visits"]}
    busiest = {(r["store"], r["date"]): (r["busiest_hour"], r["busiest_hour_visitors"])
               for r in _rows(out, "stream_busiest") if r["date"] in days}
    assert busiest == want["busiest"]
    zones: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    for r in sorted(_rows(out, "stream_zones"), key=lambda r: r["rank"]):
        if r["date"] in days:
            zones.setdefault((r["store"], r["date"]), []).append((r["zone"], r["visitors"], r["rank"]))
    assert zones == {k: v for k, v in want["zones"].items() if v}
    loyalty = {(r["store"], r["date"]): {k: r[k] for k in want["loyalty"][(r["store"], r["date"])]}
               for r in _rows(out, "stream_loyalty") if r["date"] in days}
    assert loyalty == want["loyalty"]
    assert any(row["returning_visitors"] for row in loyalty.values())  # history carried across days
    assert any(row["dwell_1_6h"] for row in daily.values())
