"""CSV import: good rows become sightings and visits, bad rows are reported by line, MACs are hashed."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

from agent.config import load_store
from aggregator.analytics import queries
from aggregator.analytics.csv_import import import_csv
from aggregator.analytics.definitions import AnalyticsParams
from aggregator.analytics.rollup import Rollup
from tests.conftest import CONFIG_DIR

STORE = load_store(CONFIG_DIR / "store.toml")
MAC = "AA:BB:CC:11:22:33"
CSV = f"""ts,device,zone,x,y
2026-03-11T10:00:00,dev-1,Sport
2026-03-11T10:05:00+01:00,dev-1,Sport,700,1000
1773220500,{MAC},Men's,800,700
not-a-time,dev-2,Sport
2026-03-11T10:20:00,dev-3,Kitchen
2026-03-11T10:30:00,dev-4,Sport,700
2026-03-11T10:30:00,,Sport
2026-03-11T10:31:00,dev-5,Sport,abc,1
2026-03-11T12:00:00,dev-1,Women's
"""


def _import(conn: sqlite3.Connection, text: str):
    return import_csv(conn, text.splitlines(keepends=True), timezone=STORE.timezone, secret=STORE.secret,
                      plan=STORE.plan)


def test_good_rows_imported_bad_rows_reported_with_line_numbers(core_db: sqlite3.Connection) -> None:
    result = _import(core_db, CSV)
    assert result.rows == 4
    assert [b["line"] for b in result.bad_lines] == [5, 6, 7, 8, 9]
    assert result.bad == 5
    assert "unknown zone" in result.bad_lines[1]["reason"]
    assert "3 or 5 fields" in result.bad_lines[2]["reason"]
    # dev-1: 10:00 and 10:05 one visit, 12:00 a second (more than 30 min unseen); the MAC device one.
    assert result.visits == 3
    visits = core_db.execute("SELECT visitor, start_ts, end_ts, passerby FROM visits ORDER BY start_ts").fetchall()
    assert (visits[0][0], visits[0][2] - visits[0][1], visits[0][3]) == ("dev-1", 300.0, 0)


def test_a_raw_mac_never_reaches_the_database(core_db: sqlite3.Connection, sqlite_path: Path) -> None:
    _import(core_db, CSV)
    core_db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    devices = {r[0] for r in core_db.execute("SELECT device FROM sightings")}
    assert MAC not in devices and any(d.startswith("d-") for d in devices)
    raw = sqlite_path.read_bytes()
    assert MAC.encode() not in raw and MAC.lower().encode() not in raw


def test_missing_position_uses_the_zone_centre_and_naive_time_is_local(core_db: sqlite3.Connection) -> None:
    _import(core_db, "2026-03-11T10:00:00,dev-1,Sport\n")
    ts, x, y = core_db.execute("SELECT ts, x, y FROM sightings").fetchone()
    assert (x, y) == STORE.plan.zone_named("Sport").centroid
    assert ts == 1773219600.0  # 10:00 in Warsaw (UTC+1 in March) = 09:00 UTC


def test_imported_rows_feed_the_statistics_and_reimport_changes_nothing(core_db: sqlite3.Connection) -> None:
    rollup = Rollup(core_db, AnalyticsParams(timezone=STORE.timezone))
    _import(core_db, CSV)
    rollup.update()
    first = queries.daily(core_db, date(2026, 3, 11), date(2026, 3, 11))
    assert first[0]["visitors"] == 2 and first[0]["visits"] == 3
    _import(core_db, CSV)  # the same file again: same visits (same ids), duplicate sightings count once
    rollup.update()
    assert queries.daily(core_db, date(2026, 3, 11), date(2026, 3, 11)) == first


def test_linked_devices_are_counted_as_their_customer(core_db: sqlite3.Connection) -> None:
    core_db.execute("INSERT INTO links VALUES ('dev-9', '42', 0)")
    _import(core_db, "1773219600,dev-9,Sport\n")
    assert core_db.execute("SELECT visitor, customer_id FROM visits").fetchone() == ("42", "42")
