"""``floorwalker-chain``'s subcommands: batch, stream, serve."""

from __future__ import annotations

import argparse
import json
import os
from datetime import date
from pathlib import Path

from agent.cliutil import int_at_least
from aggregator.chain import job
from aggregator.chain.layout import KINDS


def _date(raw: str) -> str:
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {raw!r}") from None


def add_dirs(p: argparse.ArgumentParser) -> None:
    """--chain-dir and --out, as every chain job takes them."""
    p.add_argument("--chain-dir", default=os.environ.get("FLOORWALKER_CHAIN_DIR", "./chain"), metavar="DIR",
                   help="the chain directory the stores ship into (env FLOORWALKER_CHAIN_DIR, default ./chain)")
    p.add_argument("--out", default=os.environ.get("FLOORWALKER_CHAIN_OUT", "./chain-results"), metavar="DIR",
                   help="where the job writes its results as JSON lines (env FLOORWALKER_CHAIN_OUT, "
                        "default ./chain-results)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="recompute the chain figures for a date range (Flink SQL, batch mode)",
                       description="Run the chain SQL files over every shipped file and write per-store and "
                                   "chain-wide daily figures and zone rankings for the days asked for.")
    add_dirs(p)
    p.add_argument("--from", dest="first", type=_date, default=None, metavar="YYYY-MM-DD",
                   help="first day to report (default: the first day shipped)")
    p.add_argument("--to", dest="last", type=_date, default=None, metavar="YYYY-MM-DD",
                   help="last day to report (default: the last day shipped)")
    p.add_argument("--parallelism", type=int_at_least(1), default=1, help="Flink parallelism (default 1)")
    p.add_argument("--timezone", default="UTC", help="Flink's session time zone (default UTC; the shipped "
                                                     "dates and hours are already the stores' own)")
    p.set_defaults(func=run_batch)
    from aggregator.chain import serve, stream  # each registers its own subcommand
    stream.register(sub)
    serve.register(sub)


def shipped_dates(chain_dir: Path) -> list[str]:
    """Every local date some store shipped, from the partition directory names."""
    found: set[str] = set()
    for kind in KINDS:
        for d in (chain_dir / kind).glob("store=*/date=*"):
            found.add(d.name.removeprefix("date="))
    return sorted(found)


def run_batch(args: argparse.Namespace) -> int:
    chain_dir = Path(args.chain_dir)
    dates = shipped_dates(chain_dir)
    if not dates and not (args.first and args.last):
        print(f"floorwalker-chain: nothing shipped under {chain_dir} (expected {KINDS[0]}/store=<id>/date=...)")
        return 1
    first = args.first or dates[0]
    last = args.last or dates[-1]
    result = job.batch(chain_dir, Path(args.out), first, last, parallelism=args.parallelism, timezone=args.timezone)
    print(json.dumps({"from": first, "to": last, "seconds": round(result.seconds, 1), "out": args.out}))
    return 0
