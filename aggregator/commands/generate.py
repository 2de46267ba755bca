"""``floorwalker-aggregator generate``: fill the database with weeks of realistic synthetic traffic."""

from __future__ import annotations

import argparse
import json
import os
from datetime import date
from pathlib import Path

from aggregator.analytics.cli_support import add_common, load, open_db, roll_up
from aggregator.analytics.generator import generate
from aggregator.analytics.progress import Progress
from aggregator.chain.generate import generate_chain

DEMO_CHAIN_KEY = "floorwalker-demo-chain-key"  # for generated demo data only; real chains set their own


def _date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {raw!r}") from None


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="write synthetic history (visits, positions, door counts) for demos and benchmarks",
        description="Write DAYS days of made-up but realistic shop traffic into the database: busier Saturdays, "
                    "lunch and after-work peaks, passers-by, regular and occasional shoppers, favourite zones, "
                    "door counts. The same --seed always gives the same data. Use it on a demo or test "
                    "database, not on a live store's. The statistics are brought up to date afterwards.")
    add_common(p)
    p.add_argument("--days", type=_positive, default=30, help="how many days (default 30)")
    p.add_argument("--visits-per-day", type=_positive, default=5000, metavar="N",
                   help="average detections per day, passers-by included (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--end", type=_date, default=None, metavar="YYYY-MM-DD",
                   help="last day to generate, in the store's time zone (default yesterday)")
    chain = p.add_argument_group("a whole chain (docs/CHAIN.md)")
    chain.add_argument("--stores", type=_positive, default=None, metavar="N",
                       help="write N stores' history (of different sizes, with shoppers who visit several "
                            "stores) as shipped files into --chain-dir instead of filling --db")
    chain.add_argument("--chain-dir", default="./chain", metavar="DIR",
                       help="with --stores: the chain directory to write (default ./chain)")
    chain.add_argument("--chain-key", default=os.environ.get("FLOORWALKER_CHAIN_KEY", DEMO_CHAIN_KEY),
                       metavar="KEY", help="with --stores: the chain key that re-keys visitor ids "
                                           "(env FLOORWALKER_CHAIN_KEY; default a demo key)")
    chain.add_argument("--keep-dbs", action="store_true",
                       help="with --stores: keep each store's database, with its statistics, in "
                            "DIR/_stores/<store>.db (to compare with the chain figures)")
    chain.add_argument("--jobs", type=_positive, default=None, metavar="N",
                       help="with --stores: generate N stores at a time, one process each (default: one per CPU)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.stores:
        return _run_chain(args)
    store, params = load(args)
    customers = _customer_ids(store.customers_file)
    conn = open_db(args.db)
    try:
        with Progress("generate", total=args.days, unit="days") as bar:
            result = generate(conn, plan=store.plan, entrance=store.entrance, timezone=store.timezone,
                              days=args.days, visits_per_day=args.visits_per_day, seed=args.seed,
                              end_day=args.end, customer_ids=customers, progress=bar.update)
        roll_up(conn, params)
    finally:
        conn.close()
    print(json.dumps({"days": result.days, "visits": result.visits, "sightings": result.sightings,
                      "door_events": result.door_events, "db": args.db}))
    return 0


def _run_chain(args: argparse.Namespace) -> int:
    store, _params = load(args)
    chain_dir = Path(args.chain_dir)
    with Progress("generate", total=args.stores, unit="stores") as bar:
        result = generate_chain(chain_dir, store=store, stores=args.stores, days=args.days,
                                visits_per_day=args.visits_per_day, seed=args.seed, end_day=args.end,
                                chain_key=args.chain_key, customer_ids=_customer_ids(store.customers_file),
                                keep_dbs=args.keep_dbs, progress=bar.update, jobs=args.jobs)
    print(json.dumps({"stores": result.stores, "days": args.days, "visits": result.visits,
                      "shipped_visits": result.shipped_visits, "shipped_zone_visits": result.shipped_zone_visits,
                      "chain_dir": str(chain_dir)}))
    return 0


def _customer_ids(path: object) -> list[str]:
    """Loyalty customers become regular shoppers; a missing file just means none."""
    try:
        with open(str(path), encoding="utf-8") as fh:
            return [str(c["customer_id"]) for c in json.load(fh) if isinstance(c, dict) and "customer_id" in c]
    except (OSError, ValueError):
        return []
