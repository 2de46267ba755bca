"""``floorwalker-aggregator offers``: replay a click stream through the offer rules."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from agent.cliutil import number_between, resolve_config_dir
from aggregator.offers.coupons import CouponBook
from aggregator.offers.inputs import BadRow, click_from_row
from aggregator.offers.rules import EngineLimits, load_rules
from aggregator.offers.service import OfferService

MAX_REPORTED_BAD_LINES = 10


def default_rules_file(config_dir: str | None = None) -> Path:
    """$OFFERS_FILE, else offers.toml of the configuration directory (never the packaged demo's unasked)."""
    return Path(os.environ.get("OFFERS_FILE") or resolve_config_dir(config_dir) / "offers.toml")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "offers", help="replay a click stream (the retail demo's enriched-click-data rows) through the offer rules",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read one JSON row per line (timestamp in nanoseconds, userId, productId, category, gender, "
                    "age — the rows of the retail demo's enriched-click-data stream), run them through the offer "
                    "rules and print one JSON line per offer fired: {\"user\", \"offer\", \"ts\", \"rule\"} (ts "
                    "as in the row, nanoseconds). With --log, also the state transitions in the log format of the "
                    "retail demo's event detection.\n\n"
                    "By default the replay follows the retail demo's event detection exactly: rows in file order, "
                    "nobody forgotten for idleness, no late rows rejected. --idle-s and --late-s apply the live "
                    "server's policy.\n"
                    "Example: floorwalker-aggregator offers --replay clicks.jsonl --log")
    p.add_argument("--rules", type=Path, default=None, metavar="FILE",
                   help="offer rules file (default: env OFFERS_FILE, else offers.toml in the configuration "
                        "directory)")
    p.add_argument("--config-dir", default=None, metavar="DIR",
                   help="configuration directory whose offers.toml to use without --rules (env "
                        "FLOORWALKER_CONFIG_DIR, default ./firmware-config; an error if none of these exists)")
    p.add_argument("--replay", required=True, metavar="EVENTS.jsonl",
                   help="the click rows, one JSON object per line ('-' reads standard input)")
    p.add_argument("--log", action="store_true",
                   help="also print every state transition, as the retail demo's event detection logs them")
    p.add_argument("--idle-s", type=number_between(0), default=0.0,
                   help="forget shoppers idle this long in event time (default 0: never, as the retail demo)")
    p.add_argument("--late-s", type=number_between(0), default=None,
                   help="reject rows older than the shopper's last row by more than this (default: none rejected)")
    p.add_argument("--coupons", type=Path, default=None, metavar="FILE",
                   help="coupons file in the retail demo's format; when given each offer line also names the "
                        "coupon id")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # --log prints the transitions on stdout; the logger's copy on stderr would only repeat them.
    logging.getLogger("floorwalker.offers").setLevel(logging.WARNING)
    rules = load_rules(args.rules or default_rules_file(args.config_dir))
    limits = EngineLimits(max_shoppers=rules.limits.max_shoppers, idle_s=args.idle_s or None,
                          late_s=args.late_s if args.late_s is not None else float("inf"))
    coupons = CouponBook.load(args.coupons) if args.coupons else None
    service = OfferService(rules, coupons, limits=limits, track_changes=False)
    if args.replay == "-":
        bad = replay(service, sys.stdin, sys.stdout, with_log=args.log)
    else:
        with open(args.replay, encoding="utf-8", errors="replace") as stream:
            bad = replay(service, stream, sys.stdout, with_log=args.log)
    counts = dict(service.counts())
    counts["bad_lines"] = bad
    print(json.dumps({"summary": counts}), file=sys.stderr)
    return 0


def replay(service: OfferService, stream: TextIO, out: TextIO, *, with_log: bool) -> int:
    """Feed every line of ``stream`` to ``service``; returns the number of unusable lines."""
    bad = 0
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            click = click_from_row(json.loads(line))
        except (json.JSONDecodeError, BadRow) as exc:
            bad += 1
            if bad <= MAX_REPORTED_BAD_LINES:
                print(f"line {number}: skipped: {exc}", file=sys.stderr)
            continue
        fired = service.handle(click)
        lines, service.pending_log = service.pending_log, []
        if with_log:
            for ts, text in lines:
                stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
                print(f"{stamp}: {text}", file=out)
        for offer in fired:
            record = {"user": offer.shopper, "offer": offer.offer, "ts": click.ts_ns, "rule": offer.rule}
            if offer.coupon is not None:
                record["coupon"] = offer.coupon.get("id")
            print(json.dumps(record), file=out)
    return bad

