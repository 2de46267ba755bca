"""``floorwalker-chain stream``: the chain's daily figures kept current as stores ship, late rows counted."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.cliutil import int_at_least, number_between
from aggregator.chain import job
from aggregator.chain.commands import add_dirs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="keep daily figures current as stores ship (Flink SQL, streaming mode)",
                       description="Watch the chain directory (new part files every 10 s) and write per-store and "
                                   "chain-wide daily visits, visitors, dwell buckets, new versus returning "
                                   "visitors, the busiest hour and the zone ranking when each local day's "
                                   "window closes: "
                                   "7 hours after midnight by the shipped rows' clock, so a store shipping up to "
                                   "6 hours late still counts. Rows arriving later than that are written to "
                                   "OUT/late and OUT/late_zones instead of being dropped; recompute their days "
                                   "with `batch`. "
                                   "Runs until stopped (Ctrl-C).")
    add_dirs(p)
    p.add_argument("--timezone", default="UTC", metavar="ZONE",
                   help="where a day starts and ends for the windows, e.g. Europe/Warsaw (default UTC)")
    p.add_argument("--checkpoint-s", type=number_between(0.1), default=10.0,
                   help="how often results are committed to files (default 10 s)")
    p.add_argument("--parallelism", type=int_at_least(1), default=1, help="Flink parallelism (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    job.stream(Path(args.chain_dir), Path(args.out), timezone=args.timezone, parallelism=args.parallelism,
               checkpoint_s=args.checkpoint_s)
    return 0
