"""Roll-up tables (prefix ``an_``), computed from the aggregator's core tables, in a database file of their own.

Why a file of their own: a roll-up is a write transaction, and one that read a backlog held the
core file's single write lock for 1.4-10.6 s in the ingest benchmark (300-600k messages), while
the SQLite writer, which acknowledges messages only after its COMMIT, waited in its busy
handler; past its 10 s busy timeout its COMMIT failed and was retried. With the roll-ups in
``<name>.analytics.db`` beside ``<name>.db``, attached to every analytics connection as ``an``, a
roll-up locks only that file and reads the core tables from a WAL snapshot: the writer never
waits for it. The roll-ups are derived data: delete the file and they are computed again.

The core tables belong to aggregator/store.py; commands like ``generate`` must work on a fresh
file, so :func:`ensure_core_tables` runs the store's own (idempotent) schema on it.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from aggregator.store import create_schema

log = logging.getLogger(__name__)

ROLLUP_DDL = """
CREATE TABLE IF NOT EXISTS an.an_state(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS an.an_visit(visit_id TEXT PRIMARY KEY, visitor TEXT, day TEXT, passerby INTEGER,
    duration_s REAL, bucket TEXT);
CREATE INDEX IF NOT EXISTS an.an_visit_day ON an_visit(day);
CREATE INDEX IF NOT EXISTS an.an_visit_visitor ON an_visit(visitor, day);
CREATE TABLE IF NOT EXISTS an.an_visitor_day(day TEXT, visitor TEXT, is_visitor INTEGER, is_passerby INTEGER,
    loyalty TEXT, favourite_zone TEXT, favourite_entries INTEGER, multi_zones TEXT,
    PRIMARY KEY(day, visitor)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS an.an_visitor_day_visitor ON an_visitor_day(visitor, day);
CREATE TABLE IF NOT EXISTS an.an_visitor_hour(day TEXT, hour INTEGER, visitor TEXT,
    PRIMARY KEY(day, hour, visitor)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS an.an_visitor_hour_visitor ON an_visitor_hour(visitor, day);
CREATE TABLE IF NOT EXISTS an.an_visitor_zone(day TEXT, zone TEXT, visitor TEXT, entries INTEGER,
    PRIMARY KEY(day, zone, visitor)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS an.an_visitor_zone_visitor ON an_visitor_zone(visitor, day);
CREATE TABLE IF NOT EXISTS an.an_door_hour(day TEXT, hour INTEGER, door_in INTEGER, door_out INTEGER,
    PRIMARY KEY(day, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS an.an_daily(day TEXT PRIMARY KEY, visitors INTEGER, new_visitors INTEGER,
    returning_visitors INTEGER, occasional_visitors INTEGER, busiest_hour INTEGER, busiest_hour_visitors INTEGER,
    passersby INTEGER, visits INTEGER, door_in INTEGER, door_out INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS an.an_hourly(day TEXT, hour INTEGER, visitors INTEGER, PRIMARY KEY(day, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS an.an_zone(day TEXT, zone TEXT, visitors INTEGER, rank INTEGER,
    PRIMARY KEY(day, zone)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS an.an_dwell(day TEXT, bucket TEXT, visits INTEGER, PRIMARY KEY(day, bucket)) WITHOUT ROWID;
-- Which visit a sighting belongs to, for re-reading a visit's sightings when its passer-by flag flips.
CREATE INDEX IF NOT EXISTS an_sightings_visit ON sightings(visit_id);
"""

# Tables the roll-up owns and `recompute` empties (an_state is kept apart: it holds watermarks).
ROLLUP_TABLES = ("an_visit", "an_visitor_day", "an_visitor_hour", "an_visitor_zone", "an_door_hour",
                 "an_daily", "an_hourly", "an_zone", "an_dwell")
_ALL_TABLES = (*ROLLUP_TABLES, "an_state")


def rollup_path(path: str | Path) -> Path:
    """The roll-ups' file for the core database ``path``: ``floorwalker.db`` -> ``floorwalker.analytics.db``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.analytics{p.suffix or '.db'}")


def connect(path: str | Path, *, timeout_s: float = 30.0) -> sqlite3.Connection:
    """The core file with the roll-ups' file attached as ``an``, both in WAL mode, with a busy timeout;
    autocommit (we open transactions explicitly, with :func:`begin_rollup` for the roll-ups)."""
    conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    memory = str(path) == ":memory:"
    conn.execute("ATTACH DATABASE ? AS an", (":memory:" if memory else str(rollup_path(path)),))
    for schema in ("main", "an"):
        conn.execute(f"PRAGMA {schema}.journal_mode=WAL")
        conn.execute(f"PRAGMA {schema}.synchronous=NORMAL")
    return conn


def begin_rollup(conn: sqlite3.Connection) -> None:
    """Open a transaction that write-locks the roll-ups' file only.

    ``BEGIN IMMEDIATE`` would take the write lock of every attached file, the core one included,
    and hold up the aggregator's writer for as long as the roll-up runs. A deferred BEGIN whose
    first statement writes to ``an`` takes that file's lock (waiting for another roll-up, e.g. the
    ``recompute`` command's) and reads the core file from a snapshot when it first reads it."""
    conn.execute("BEGIN")
    try:
        conn.execute("DELETE FROM an.an_state WHERE key = 'lock'")  # matches nothing; takes the write lock
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def ensure_core_tables(conn: sqlite3.Connection) -> None:
    """The aggregator's core tables (aggregator.store's schema) in the file ``conn`` is open on."""
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    if not path:
        raise ValueError("analytics needs a database file, not an in-memory database")
    create_schema(path)


def ensure_rollup_tables(conn: sqlite3.Connection) -> None:
    """The roll-up tables in ``an``, with what an earlier version kept in the core file moved there.

    Moved, not recomputed: the roll-ups keep the figures of days whose raw rows retention has
    since deleted, and a recompute would lose them. All in one transaction; if the old tables do
    not fit the new ones, they are dropped and the first update computes what the raw rows allow."""
    conn.executescript(ROLLUP_DDL)
    find = "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name GLOB 'an_*'"
    if not conn.execute(find).fetchone():
        return
    conn.execute("BEGIN IMMEDIATE")  # then look again: another process may have moved them meanwhile
    legacy = [name for (name,) in conn.execute(find)]
    try:
        for name in legacy:
            if name in _ALL_TABLES:
                conn.execute(f"INSERT OR REPLACE INTO an.{name} SELECT * FROM main.{name}")
            conn.execute(f"DROP TABLE main.{name}")
        conn.execute("COMMIT")
        log.info("event=analytics-moved tables=%d into=%s", len(legacy), _attached_path(conn))
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        log.warning("event=analytics-move-failed error=%r action=recompute", exc)
        conn.execute("BEGIN IMMEDIATE")
        for name in legacy:
            conn.execute(f"DROP TABLE IF EXISTS main.{name}")
        for name in _ALL_TABLES:
            conn.execute(f"DELETE FROM an.{name}")
        conn.execute("COMMIT")


def _attached_path(conn: sqlite3.Connection) -> str:
    return next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "an"), "")
