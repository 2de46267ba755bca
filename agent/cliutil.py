"""What every Floorwalker command line shares: subcommand registry, errors as one line, exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from agent.errors import (
    EXIT_CONFIG,
    EXIT_NOINPUT,
    EXIT_NOPERM,
    EXIT_SOFTWARE,
    EXIT_UNAVAILABLE,
    BrokerUnavailable,
    ConfigError,
    FloorwalkerError,
)


def build_parser(prog: str, description: str, modules: Sequence[str], epilog: str = "") -> argparse.ArgumentParser:
    """A parser whose subcommands come from ``modules``, each with ``register(subparsers)``."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"),
                        help="DEBUG, INFO, WARNING or ERROR (env LOG_LEVEL; default INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def setup_logging(level: str, filename: str | None = None) -> None:
    """Log lines are events with fields; ``LOG_FILENAME`` adds a file, as in seed 000."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    filename = filename if filename is not None else os.environ.get("LOG_FILENAME", "")
    if filename:
        handlers.append(logging.FileHandler(filename))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def run_main(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, run the chosen command, and turn expected errors into one line and an exit code."""
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        return int(func(args) or 0)
    except ConfigError as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokerUnavailable as exc:
        print(f"{prog}: MQTT broker unavailable: {exc}", file=sys.stderr)
        return EXIT_NOPERM if "not authori" in str(exc).lower() or "bad user" in str(exc).lower() else EXIT_UNAVAILABLE
    except FileNotFoundError as exc:
        print(f"{prog}: not found: {exc}", file=sys.stderr)
        return EXIT_NOINPUT
    except FloorwalkerError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_SOFTWARE
    except KeyboardInterrupt:
        return 130
