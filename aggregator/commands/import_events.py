"""``floorwalker-aggregator import --format csv FILE``: load visitor sightings recorded by another system."""

from __future__ import annotations

import argparse
import json
import sys

from aggregator.analytics.cli_support import add_common, load, open_db, roll_up
from aggregator.analytics.csv_import import DEFAULT_VISIT_GAP_S, import_csv
from aggregator.analytics.progress import Progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import", aliases=["import_events"],
        help="load historical visitor sightings from a CSV file (ts,device,zone[,x,y])",
        description="Load sightings exported by another footfall system. Each line is ts,device,zone or "
                    "ts,device,zone,x,y: ts in epoch seconds or ISO 8601 (without an offset it is the store's "
                    "local time), device an id (a MAC address is hashed with the store secret before it is "
                    "stored), zone a zone name from store.toml or empty, x/y plan pixels. A header line "
                    "starting with 'ts' is skipped. Bad lines are counted and listed with their line number; "
                    "the good ones are still imported. A device's rows form one visit until it is unseen for "
                    "--visit-gap-min. The statistics are brought up to date afterwards.")
    add_common(p)
    p.add_argument("--format", choices=["csv"], default="csv", help="file format (csv, the default and only one)")
    p.add_argument("--visit-gap-min", type=float, default=DEFAULT_VISIT_GAP_S / 60, metavar="MIN",
                   help=f"unseen this long ends a visit (default {DEFAULT_VISIT_GAP_S / 60:g})")
    p.add_argument("file", metavar="FILE", help="the CSV file ('-' reads standard input)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store, params = load(args)
    total = _count_lines(args.file) if args.file != "-" else None
    # Undecodable bytes become U+FFFD and that line is rejected, instead of aborting the import.
    fh = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8-sig", errors="replace", newline="")
    try:
        conn = open_db(args.db)
        try:
            with Progress("import", total=total, unit="lines") as bar:
                result = import_csv(conn, fh, timezone=store.timezone, secret=store.secret, plan=store.plan,
                                    visit_gap_s=args.visit_gap_min * 60, rotate_daily=store.rotate_daily,
                                    progress=bar.update)
            roll_up(conn, params)
        finally:
            conn.close()
    finally:
        if fh is not sys.stdin:
            fh.close()
    print(json.dumps(result.as_dict()))
    for bad in result.bad_lines:
        print(f"{args.file}:{bad['line']}: {bad['reason']}", file=sys.stderr)
    if result.bad > len(result.bad_lines):
        print(f"... and {result.bad - len(result.bad_lines)} more bad lines", file=sys.stderr)
    return 0


def _count_lines(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)
