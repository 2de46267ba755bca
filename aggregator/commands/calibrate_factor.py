"""``floorwalker-aggregator calibrate-factor``: the store's people-per-device factor from its own records."""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from agent.cliutil import number_between, resolve_config_dir
from agent.config import area_pirs, load_config_dir
from agent.contract import AgentMessage, Rejection, agent_topic, decode_agent
from aggregator.analytics.cli_support import add_db
from aggregator.export import ExportError, open_readonly, parse_bound
from aggregator.factor_calibration import (
    DEFAULT_WINDOW_S,
    CalibrationError,
    device_series,
    fit_from_counts,
    fit_from_door,
)

KINDS = ("enter", "move", "exit", "door", "motion")  # what the live occupancy estimate reads


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate-factor", help="measure the store's people-per-device factor from its door counter or head counts",
        description="Replay a stored day's agent messages through the live occupancy estimate and measure how many "
                    "people one counted device stands for in this store: from the door counter (people by the "
                    "door's in - out, its end-of-day balance taken off as drift, over the devices, summed over "
                    "the day: --from/--to must run from the store closed and empty to closed and empty) or, with "
                    "--count, from people counted by hand. Prints JSON with the factor, its uncertainty and the "
                    "line to put in store.toml's [store] table (occupancy_factor). Reads the database only; safe "
                    "while the aggregator runs. docs/OCCUPANCY.md says how.\n"
                    "Example: floorwalker-aggregator calibrate-factor --from 2026-11-02 --to 2026-11-02",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db(p)
    p.add_argument("--config-dir", default=None, metavar="DIR",
                   help="configuration directory with store.toml, for the store id and zones, and the device "
                        "files (devices/*.toml), for the PIRs that watch an area rather than a zone "
                        "(env FLOORWALKER_CONFIG_DIR, default ./firmware-config)")
    p.add_argument("--from", dest="since", required=True, metavar="DATE",
                   help="first day or time, YYYY-MM-DD or ISO 8601 (UTC unless it has an offset); a whole opening "
                        "day with the store empty at its start works best")
    p.add_argument("--to", dest="until", required=True, metavar="DATE",
                   help="last day (inclusive) or time (exclusive), same forms")
    p.add_argument("--count", action="append", default=[], metavar="TIME=PEOPLE",
                   help="a head count: the people in the store at TIME (ISO 8601, UTC unless it has an offset), "
                        "e.g. 2026-11-02T15:30=23; repeat for several; without it the door counter is used")
    p.add_argument("--not-at-door", type=number_between(0), default=0.0, metavar="N",
                   help="door method: people in the store all the time who never pass the counter (staff using a "
                        "back door; default 0)")
    p.add_argument("--window-min", type=number_between(0.1), default=DEFAULT_WINDOW_S / 60, metavar="MIN",
                   help="door method: minutes per block for the uncertainty (default 10)")
    p.set_defaults(func=run)


def parse_count(raw: str) -> tuple[float, float]:
    """``TIME=PEOPLE`` -> (epoch seconds, people); CalibrationError names what is wrong."""
    moment, sep, people = raw.rpartition("=")
    if not sep or not moment:
        raise CalibrationError(f"--count: TIME=PEOPLE, e.g. 2026-11-02T15:30=23, got {raw!r}")
    try:
        ts = parse_bound(moment, end=False)
        n = float(people)
    except (ExportError, ValueError) as exc:
        raise CalibrationError(f"--count {raw!r}: {exc}") from None
    return ts, n


def read_messages(conn: sqlite3.Connection, store_id: str, since: float, until: float) -> Iterator[AgentMessage]:
    """The stored agent messages the occupancy estimate reads, in time order, decoded as ingest decoded them."""
    rows = conn.execute(f"SELECT agent, kind, payload FROM messages WHERE ts >= ? AND ts < ? "
                        f"AND kind IN ({', '.join('?' * len(KINDS))}) ORDER BY ts, rowid", (since, until, *KINDS))
    for agent, kind, payload in rows:
        msg = decode_agent(agent_topic(store_id, agent, kind), payload)
        if not isinstance(msg, Rejection):  # ingest stored it, so it decodes; a hand-edited row is skipped
            yield msg


def run(args: argparse.Namespace) -> int:
    try:
        since, until = parse_bound(args.since, end=False), parse_bound(args.until, end=True)
    except ExportError as exc:
        raise CalibrationError(f"--from/--to: {exc}") from None
    if until <= since:
        raise CalibrationError(f"--to ({args.until}) is not after --from ({args.since})")
    if not args.window_min > 0:
        raise CalibrationError(f"--window-min must be > 0, got {args.window_min}")
    counts = [parse_count(c) for c in args.count]
    store, devices = load_config_dir(Path(resolve_config_dir(args.config_dir)))
    conn = open_readonly(args.db)
    try:
        samples = device_series(store, read_messages(conn, store.id, since, until), area_pirs=area_pirs(devices))
    finally:
        conn.close()
    if counts:
        result = fit_from_counts(samples, counts)
    else:
        result = fit_from_door(samples, window_s=args.window_min * 60, not_at_door=args.not_at_door)
    print(json.dumps(result.as_dict()))
    return 0
