"""What the analytics commands share: --db and --config-dir, opening the file, running the roll-ups."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
from pathlib import Path

from agent.cliutil import resolve_config_dir
from agent.config import StoreConfig, load_store
from agent.errors import FloorwalkerError
from aggregator.analytics.definitions import AnalyticsParams, zone_gap_from_env
from aggregator.analytics.progress import Progress
from aggregator.analytics.rollup import Rollup
from aggregator.analytics.schema import connect, ensure_core_tables

log = logging.getLogger(__name__)


def add_db(p: argparse.ArgumentParser) -> None:
    """--db: every command that reads or writes the aggregator's database takes it the same way."""
    p.add_argument("--db", default=os.environ.get("FLOORWALKER_DB", "./floorwalker.db"), metavar="PATH",
                   help="the aggregator's SQLite file (env FLOORWALKER_DB, default ./floorwalker.db)")


def add_common(p: argparse.ArgumentParser) -> None:
    add_db(p)
    p.add_argument("--config-dir", default=None, metavar="DIR",
                   help="configuration directory with store.toml, for the time zone and zones "
                        "(env FLOORWALKER_CONFIG_DIR, default ./firmware-config)")
    p.add_argument("--zone-gap-min", type=float, default=None, metavar="MIN",
                   help="minutes a visitor must be away from a zone before coming back counts as a new "
                        "entry (env FLOORWALKER_ZONE_GAP_S in seconds, default 10)")


def load(args: argparse.Namespace) -> tuple[StoreConfig, AnalyticsParams]:
    args.config_dir = resolve_config_dir(args.config_dir)
    log.info("event=config config_dir=%s", Path(args.config_dir).resolve())
    store = load_store(Path(args.config_dir) / "store.toml")
    gap_s = args.zone_gap_min * 60 if args.zone_gap_min else zone_gap_from_env()
    return store, AnalyticsParams(timezone=store.timezone, zone_gap_s=gap_s)


def open_db(path: str) -> sqlite3.Connection:
    conn = connect(path)
    ensure_core_tables(conn)
    return conn


class TrimmedHistory(FloorwalkerError):
    """A recompute would drop figures whose raw rows are gone."""


def roll_up(conn: sqlite3.Connection, params: AnalyticsParams, *, full: bool = False,
            discard_trimmed: bool = False) -> int:
    """Bring the roll-ups up to date (from scratch if ``full``), with a progress bar on stderr."""
    rollup = Rollup(conn, params)
    if not full and not rollup.is_behind():
        return 0
    if full and not discard_trimmed and (lost := rollup.trimmed_days()):
        raise TrimmedHistory(f"{lost} day(s) of statistics are older than the oldest stored sighting (raw rows "
                             "removed by retention, FLOORWALKER_RETENTION_DAYS); a recompute would lose them. "
                             "Pass --discard-trimmed-days to recompute anyway")
    total = conn.execute("SELECT (SELECT COUNT(*) FROM sightings) + (SELECT COUNT(*) FROM visits)").fetchone()[0]
    with Progress("roll-ups", total=total) as bar:
        if full:
            return rollup.recompute(progress=bar.set)
        n = rollup.update()
        bar.set(total)
        return n
