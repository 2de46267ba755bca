"""``floorwalker-chain``: chain analytics over the stores' shipped visits (docs/CHAIN.md)."""

from __future__ import annotations

from collections.abc import Sequence

from agent.cliutil import build_parser, run_main

# The subcommands (batch, stream, serve) are registered by one module.
COMMAND_MODULES: tuple[str, ...] = ("aggregator.chain.commands",)

DESCRIPTION = """\
Floorwalker chain analytics: runs the Flink SQL files kept in aggregator/chain/sql over the
directory the stores ship their closed visits into (PyFlink's local mini-cluster), and serves
the results: per store and chain-wide daily figures, zone rankings, and every store's "in store now"."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("floorwalker-chain", DESCRIPTION, COMMAND_MODULES)
    return run_main("floorwalker-chain", parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
