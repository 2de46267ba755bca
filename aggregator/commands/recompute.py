"""``floorwalker-aggregator recompute``: rebuild the footfall roll-ups from the stored raw rows."""

from __future__ import annotations

import argparse
import json
import time

from aggregator.analytics.cli_support import add_common, load, open_db, roll_up


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recompute", help="rebuild the footfall statistics from the stored sightings, visits and door counts",
        description="Throw away the analytics roll-up tables (daily visitors, zones, hours, dwell, loyalty, door "
                    "counts) and compute them again from the raw rows in the database. The server keeps them up "
                    "to date by itself; run this after changing the store's time zone or the zone-entry gap, or "
                    "to check the figures. Safe while the aggregator runs (it waits for the database).")
    add_common(p)
    p.add_argument("--discard-trimmed-days", action="store_true",
                   help="recompute even though some days' raw rows were removed by retention (their figures "
                        "are then lost); without it such a recompute is refused")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _store, params = load(args)
    conn = open_db(args.db)
    try:
        started = time.monotonic()
        rows = roll_up(conn, params, full=True, discard_trimmed=args.discard_trimmed_days)
        days = conn.execute("SELECT COUNT(*) FROM an_daily").fetchone()[0]
    finally:
        conn.close()
    print(json.dumps({"rows": rows, "days": days, "timezone": params.timezone, "zone_gap_s": params.zone_gap_s,
                      "seconds": round(time.monotonic() - started, 2)}))
    return 0
