"""The analytics commands as a technician runs them: generate, import, recompute, on a real file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from aggregator.analytics.schema import connect
from tests.conftest import REPO


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aggregator.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def _daily(path: Path) -> list[tuple]:
    conn = connect(path)  # the roll-ups' file attached
    try:
        return conn.execute("SELECT * FROM an_daily ORDER BY day").fetchall()
    finally:
        conn.close()


def test_generate_is_deterministic_and_fills_the_statistics(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    for path in (a, b):
        result = _run("generate", "--days", "3", "--visits-per-day", "300", "--seed", "7", "--end", "2026-03-15",
                      "--db", str(path))
        assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["days"] == 3 and summary["visits"] > 600 and summary["sightings"] > summary["visits"]
    days = _daily(a)
    assert [d[0] for d in days] == ["2026-03-13", "2026-03-14", "2026-03-15"]
    assert days == _daily(b)
    # Saturday (03-14) is busier than Friday and Sunday; 09:00-21:00 opening shows in the busiest hour.
    visitors = {d[0]: d[1] for d in days}
    assert visitors["2026-03-14"] > visitors["2026-03-13"] > visitors["2026-03-15"]
    assert all(9 <= d[5] <= 21 for d in days)


def test_recompute_reports_and_keeps_figures(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    assert _run("generate", "--days", "2", "--visits-per-day", "200", "--end", "2026-03-15",
                "--db", str(db)).returncode == 0
    before = _daily(db)
    result = _run("recompute", "--db", str(db))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["days"] == len(before) >= 2 and out["timezone"] == "Europe/Warsaw" and out["zone_gap_s"] == 600
    assert _daily(db) == before


def test_import_lists_bad_lines_and_keeps_good_ones(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    csv_file = tmp_path / "history.csv"
    csv_file.write_bytes(b"ts,device,zone\n2026-03-11T10:00:00,dev-1,Sport\n\xff\xfe,dev-2,Sport\n"
                         b"1773223200,dev-2,Men's\nyesterday,dev-3,Sport\n")
    result = _run("import", "--format", "csv", str(csv_file), "--db", str(db))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["rows"], out["bad"], out["visits"]) == (2, 2, 2)
    assert f"{csv_file}:3: not valid UTF-8" in result.stderr
    assert f"{csv_file}:5: ts is neither" in result.stderr
    assert _daily(db)[0][:2] == ("2026-03-11", 2)


def test_import_refuses_a_format_it_cannot_read(tmp_path: Path) -> None:
    # csv is the default and only format (tests/test_cli.py imports without --format)
    result = _run("import", "--format", "xlsx", str(tmp_path / "x.csv"))
    assert result.returncode == 2 and "--format: invalid choice: 'xlsx'" in result.stderr


def test_recompute_refuses_to_drop_days_whose_raw_rows_were_trimmed(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    assert _run("generate", "--days", "3", "--visits-per-day", "100", "--end", "2026-03-15",
                "--db", str(db)).returncode == 0
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM sightings WHERE ts < (SELECT MIN(ts) + 86400 FROM sightings)")  # retention
    conn.commit()
    conn.close()
    before = _daily(db)
    result = _run("recompute", "--db", str(db))
    assert result.returncode != 0 and "--discard-trimmed-days" in result.stderr
    assert _daily(db) == before
    result = _run("recompute", "--db", str(db), "--discard-trimmed-days")
    assert result.returncode == 0, result.stderr
    first_with_visitors = min(d[0] for d in _daily(db) if d[1] > 0)
    assert first_with_visitors > before[0][0]  # visits and door counts (not trimmed) remain
