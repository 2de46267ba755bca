"""``floorwalker-aggregator``: the central service's command line."""

from __future__ import annotations

from collections.abc import Sequence

from agent.cliutil import build_parser, run_main

# Each module registers one subcommand; later work adds its module here.
COMMAND_MODULES: tuple[str, ...] = (
    "aggregator.commands.check",
    "aggregator.commands.serve",
    "aggregator.commands.recompute",
    "aggregator.commands.import_events",
    "aggregator.commands.generate",
    "aggregator.commands.offers",
    "aggregator.commands.export",
    "aggregator.commands.calibrate_factor",
)

DESCRIPTION = """\
Floorwalker aggregator: subscribes to the agents' reports, fuses and stores them in SQLite,
detects offers, publishes customer events the retail demo understands, and serves the live map and HTTP API.

Commands that touch the database take --db (env FLOORWALKER_DB, default ./floorwalker.db)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("floorwalker-aggregator", DESCRIPTION, COMMAND_MODULES)
    return run_main("floorwalker-aggregator", parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
