"""Roll-up tables (prefix ``an_``) beside the aggregator's core tables, which they are computed from.

The core tables belong to aggregator/store.py; commands like ``generate`` must work on a fresh
file, so :func:`ensure_core_tables` runs the store's own (idempotent) schema on it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aggregator.store import create_schema

ROLLUP_DDL = """
CREATE TABLE IF NOT EXISTS an_state(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS an_visit(visit_id TEXT PRIMARY KEY, visitor TEXT, day TEXT, passerby INTEGER,
    duration_s REAL, bucket TEXT);
CREATE INDEX IF NOT EXISTS an_visit_day ON an_visit(day);
CREATE INDEX IF NOT EXISTS an_visit_visitor ON an_visit(visitor, day);
CREATE TABLE IF NOT EXISTS an_visitor_day(day TEXT, visitor TEXT, is_visitor INTEGER, is_passerby INTEGER,
    loyalty TEXT, favourite_zone TEXT, favourite_entries INTEGER, multi_zones TEXT,
    PRIMARY KEY(day, visitor)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS an_visitor_day_visitor ON an_visitor_day(visitor, day);
CREATE TABLE IF NOT EXISTS an_visitor_hour(day TEXT, hour INTEGER, visitor TEXT,
    PRIMARY KEY(day, hour, visitor)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS an_visitor_hour_visitor ON an_visitor_hour(visitor, day);
CREATE TABLE IF NOT EXISTS an_visitor_zone(day TEXT, zone TEXT, visitor TEXT, entries INTEGER,
    PRIMARY KEY(day, zone, visitor)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS an_visitor_zone_visitor ON an_visitor_zone(visitor, day);
CREATE TABLE IF NOT EXISTS an_door_hour(day TEXT, hour INTEGER, door_in INTEGER, door_out INTEGER,
    PRIMARY KEY(day, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS an_daily(day TEXT PRIMARY KEY, visitors INTEGER, new_visitors INTEGER,
    returning_visitors INTEGER, occasional_visitors INTEGER, busiest_hour INTEGER, busiest_hour_visitors INTEGER,
    passersby INTEGER, visits INTEGER, door_in INTEGER, door_out INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS an_hourly(day TEXT, hour INTEGER, visitors INTEGER, PRIMARY KEY(day, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS an_zone(day TEXT, zone TEXT, visitors INTEGER, rank INTEGER,
    PRIMARY KEY(day, zone)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS an_dwell(day TEXT, bucket TEXT, visits INTEGER, PRIMARY KEY(day, bucket)) WITHOUT ROWID;
-- Which visit a sighting belongs to, for re-reading a visit's sightings when its passer-by flag flips.
CREATE INDEX IF NOT EXISTS an_sightings_visit ON sightings(visit_id);
"""

# Tables the roll-up owns and `recompute` empties (an_state is kept apart: it holds watermarks).
ROLLUP_TABLES = ("an_visit", "an_visitor_day", "an_visitor_hour", "an_visitor_zone", "an_door_hour",
                 "an_daily", "an_hourly", "an_zone", "an_dwell")


def connect(path: str | Path, *, timeout_s: float = 30.0) -> sqlite3.Connection:
    """A connection in WAL mode with a busy timeout; autocommit (we open transactions explicitly)."""
    conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    return conn


def ensure_core_tables(conn: sqlite3.Connection) -> None:
    """The aggregator's core tables (aggregator.store's schema) in the file ``conn`` is open on."""
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    if not path:
        raise ValueError("analytics needs a database file, not an in-memory database")
    create_schema(path)


def ensure_rollup_tables(conn: sqlite3.Connection) -> None:
    conn.executescript(ROLLUP_DDL)
