"""The roll-ups live in a file of their own: a roll-up never holds the core file's write lock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aggregator import sqlite_writer
from aggregator.analytics.definitions import AnalyticsParams
from aggregator.analytics.rollup import Rollup
from aggregator.analytics.schema import ROLLUP_DDL, begin_rollup, connect, ensure_core_tables, rollup_path
from aggregator.store import create_schema
from tests.analytics.streams import Writer, one_shopper

T = 1_773_100_800.0  # 2026-03-10 00:00 UTC
PARAMS = AnalyticsParams(timezone="UTC")


def test_the_aggregators_writer_commits_while_a_roll_up_is_under_way(core_db: sqlite3.Connection,
                                                                    sqlite_path: Path) -> None:
    one_shopper(core_db, 1, T)
    rollup = Rollup(core_db, PARAMS)
    writer = sqlite_writer.connect(str(sqlite_path))  # the SQLite writer process's connection
    writer.execute("PRAGMA busy_timeout = 200")  # would fail with "database is locked" behind a core lock
    begin_rollup(core_db)
    try:
        rollup._update_batch(5000)  # read the core tables, wrote the roll-ups: the locks a roll-up holds
        with writer:
            writer.execute("INSERT INTO messages(msg_id, agent, kind, ts, device, payload) "
                           "VALUES ('m-1', 'agent-1', 'move', ?, 'd', '{}')", (T,))
            Writer(writer).sighting(T + 3700, "v1", "Sport", "visit-1")
    finally:
        core_db.execute("COMMIT")
    writer.close()
    assert core_db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1
    assert core_db.execute("SELECT day, visitors FROM an_daily").fetchall() == [("2026-03-10", 1)]
    assert rollup.is_behind()  # the sighting committed meanwhile is for the next update
    rollup.update()
    assert not rollup.is_behind()


def test_two_roll_ups_take_turns(core_db: sqlite3.Connection, sqlite_path: Path) -> None:
    Rollup(core_db, PARAMS)  # the roll-up tables
    other = connect(sqlite_path, timeout_s=0.2)
    begin_rollup(core_db)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            begin_rollup(other)
    finally:
        core_db.execute("COMMIT")
    begin_rollup(other)
    other.execute("COMMIT")
    other.close()


def _old_layout(path: Path, ddl: str = ROLLUP_DDL.replace("an.an_", "an_")) -> sqlite3.Connection:
    """A core file as an earlier version left it: roll-up tables inside it (by default today's)."""
    create_schema(path)
    old = sqlite3.connect(path)
    old.executescript(ddl)
    return old


def _upgraded(path: Path) -> tuple[list[tuple], list[tuple]]:
    """Open the file as this version does, add a shopper, update: (an_daily's days, roll-up tables left in it)."""
    conn = connect(path)
    ensure_core_tables(conn)
    one_shopper(conn, 1, T)
    Rollup(conn, PARAMS).update()
    daily = conn.execute("SELECT day, visitors FROM an_daily ORDER BY day").fetchall()
    conn.close()
    core = sqlite3.connect(path)
    left = core.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'an_*'").fetchall()
    core.close()
    return daily, left


def test_roll_ups_an_earlier_version_kept_in_the_core_file_move_to_their_own(sqlite_path: Path) -> None:
    old = _old_layout(sqlite_path)
    old.executemany("INSERT INTO an_state VALUES (?, ?)", [("params", PARAMS.key()), ("sightings_id", "0"),
                                                           ("visits_seq", "0"), ("door_rowid", "0")])
    # a day whose raw rows retention has deleted: only the roll-ups still know it
    old.execute("INSERT INTO an_daily VALUES ('2026-01-05', 7, 7, 0, 0, 11, 3, 2, 7, 9, 9)")
    old.commit()
    old.close()

    daily, left = _upgraded(sqlite_path)
    assert daily == [("2026-01-05", 7), ("2026-03-10", 1)]  # kept, and the new day added incrementally
    assert left == []
    rollups = sqlite3.connect(rollup_path(sqlite_path))
    assert rollups.execute("SELECT day, visitors FROM an_daily ORDER BY day").fetchall() == [
        ("2026-01-05", 7), ("2026-03-10", 1)]
    rollups.close()


def test_old_roll_up_tables_that_do_not_fit_are_dropped_and_computed_again(sqlite_path: Path) -> None:
    old = _old_layout(sqlite_path, "CREATE TABLE an_daily(day TEXT PRIMARY KEY, visitors INTEGER)")  # another shape
    old.execute("INSERT INTO an_daily VALUES ('2026-03-10', 99)")
    old.commit()
    old.close()

    daily, left = _upgraded(sqlite_path)
    assert daily == [("2026-03-10", 1)]
    assert left == []


def test_the_roll_ups_file_sits_beside_the_core_file() -> None:
    assert rollup_path("/var/lib/floorwalker/floorwalker.db") == Path("/var/lib/floorwalker/floorwalker.analytics.db")
    assert rollup_path("data/store") == Path("data/store.analytics.db")
