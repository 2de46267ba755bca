"""``floorwalker-aggregator export``: every visit, sighting or customer event to CSV, JSON lines or Parquet."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from agent.errors import EXIT_USAGE
from aggregator.analytics.cli_support import add_db
from aggregator.analytics.progress import Progress
from aggregator.export import (
    DATASETS,
    FORMATS,
    ExportError,
    Selection,
    check_table,
    count_rows,
    export,
    open_readonly,
    parse_bound,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write raw visits, sightings or customer events to CSV, JSON lines or Parquet",
        description="Copy rows of the aggregator's database to a file, oldest first, with no row limit: "
                    "visits (one row per store visit), sightings (every position fix) or events (the customer "
                    "events published on MQTT). Safe while the aggregator runs: it reads a snapshot. Times are "
                    "epoch seconds UTC; device ids are the stored hashes. Columns: docs/DATA.md.\n"
                    "Example: floorwalker-aggregator export --what visits --from 2026-11-01 --to 2026-11-30 "
                    "--format parquet --out visits.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db(p)
    p.add_argument("--what", required=True, choices=sorted(DATASETS), help="which rows")
    p.add_argument("--from", dest="since", type=_bound(end=False), default=None, metavar="DATE",
                   help="first day or time, YYYY-MM-DD or ISO 8601 (UTC unless it has an offset; default: the start)")
    p.add_argument("--to", dest="until", type=_bound(end=True), default=None, metavar="DATE",
                   help="last day (inclusive) or time (exclusive), same forms (default: the end)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="csv, jsonl or parquet (default: from --out's extension)")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write ('-': standard output, not parquet)")
    p.set_defaults(func=run)


def _bound(*, end: bool) -> Callable[[str], Bound]:
    """argparse type of --from/--to: a bad date is a usage error naming the option, before anything is opened."""

    def parse(raw: str) -> Bound:
        try:
            return Bound(raw, parse_bound(raw, end=end))
        except ExportError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


class Bound(NamedTuple):
    text: str
    epoch_s: float


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.out).suffix.lstrip(".").lower()
    if suffix in FORMATS:
        return suffix
    raise ExportError(f"--format: csv, jsonl or parquet (--out {args.out!r} does not say which)")


def _selection(args: argparse.Namespace) -> tuple[Selection, str]:
    """What to write and in which format; ExportError names the option that is wrong."""
    fmt = _format(args)
    since = args.since.epoch_s if args.since else None
    until = args.until.epoch_s if args.until else None
    if since is not None and until is not None and since >= until:
        raise ExportError(f"--from ({args.since.text}) is not before --to ({args.until.text})")
    if args.out == "-" and fmt == "parquet":
        raise ExportError("--out -: Parquet cannot go to standard output, name a file")
    folder = Path(args.out).resolve().parent
    if args.out != "-" and not folder.is_dir():  # else the error would name our temporary FILE.part
        raise ExportError(f"--out {args.out}: no directory {folder}")
    return Selection(DATASETS[args.what], since, until), fmt


def run(args: argparse.Namespace) -> int:
    try:
        selection, fmt = _selection(args)
    except ExportError as exc:
        print(f"floorwalker-aggregator export: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    conn = open_readonly(args.db)
    try:
        check_table(conn, selection.dataset)
        conn.execute("BEGIN")  # one snapshot for the count and the rows
        total = count_rows(conn, selection)
        with Progress(f"export {args.what}", total=total) as bar:
            rows = _write(conn, selection, fmt, args.out, bar)
    finally:
        conn.close()
    summary = json.dumps({"what": args.what, "format": fmt, "rows": rows, "out": args.out})
    print(summary, file=sys.stderr if args.out == "-" else sys.stdout)  # stdout may be the data itself
    return 0


def _write(conn: sqlite3.Connection, selection: Selection, fmt: str, out: str, bar: Progress) -> int:
    """Into ``out.part`` then renamed, so an interrupted export never leaves a file that looks complete."""
    if out == "-":
        return export(conn, selection, fmt, sys.stdout.buffer, progress=bar.update)
    target = Path(out)
    part = target.with_name(target.name + ".part")
    try:
        with open(part, "wb") as fh:
            rows = export(conn, selection, fmt, fh, progress=bar.update)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return rows
