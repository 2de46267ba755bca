"""What every Floorwalker command line shares: subcommand registry, global options, errors as one line, exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

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

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CONFIG_DIR_ENV = "FLOORWALKER_CONFIG_DIR"
CONFIG_DIR_NAME = "firmware-config"


def package_version() -> str:
    """The installed distribution's version (pyproject.toml), so --version never disagrees with pip."""
    try:
        return version("floorwalker")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def log_level(raw: str) -> str:
    """argparse type of --log-level: a level name in any case, refused with the list otherwise."""
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def int_at_least(low: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``low``, so a bad count is a usage error naming the option, not a traceback."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"an integer, got {raw!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"at least {low}, got {value}")
        return value

    return parse


def number_between(low: float, high: float = math.inf) -> Callable[[str], float]:
    """argparse type: a finite number in [low, high] (a share, a duration)."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a number, got {raw!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            span = f"at least {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
            raise argparse.ArgumentTypeError(f"{span}, got {raw}")
        return value

    return parse


def tcp_port(low: int = 1) -> Callable[[str], int]:
    """argparse type of a TCP port option: ``low``..65535 (``low`` 0 where 0 means any free port)."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a port {low}..65535, got {raw!r}") from None
        if not low <= value < 65536:
            raise argparse.ArgumentTypeError(f"a port {low}..65535, got {value}")
        return value

    return parse


def resolve_port(given: int | None, default: int, environ: Mapping[str, str] | None = None, *, low: int = 1) -> int:
    """--port, else $PORT, else ``default``; a bad PORT is blamed on the environment, never silently ignored."""
    if given is not None:
        return given
    env = os.environ if environ is None else environ
    raw = env.get("PORT", "").strip()
    if not raw:
        return default
    try:
        return tcp_port(low)(raw)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError("environment", "PORT", str(exc)) from None


def add_global_options(parser: argparse.ArgumentParser, prog: str, *, in_subcommand: bool = False) -> None:
    """--version and --log-level, on the main parser and again on each subcommand's.

    On a subcommand the default is SUPPRESS: argparse then leaves the main parser's value alone
    unless the option is given after the subcommand, so both placements work.
    """
    parser.add_argument("--version", action="version", version=f"{prog} {package_version()}",
                        help="print the version and exit")
    parser.add_argument("--log-level", type=log_level, metavar="LEVEL",
                        default=argparse.SUPPRESS if in_subcommand else None,
                        help=f"{', '.join(LOG_LEVELS)} (env LOG_LEVEL; default INFO); before or after the command")


def build_parser(prog: str, description: str, modules: Sequence[str], epilog: str = "") -> argparse.ArgumentParser:
    """A parser whose subcommands come from ``modules``, each with ``register(subparsers)``."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_global_options(parser, prog)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in modules:
        importlib.import_module(name).register(sub)
    # An alias maps to the same parser object: give each parser the options once.
    for subparser in {id(p): p for p in sub.choices.values()}.values():
        add_global_options(subparser, prog, in_subcommand=True)
    return parser


def resolve_log_level(given: str | None, environ: Mapping[str, str] | None = None) -> str:
    """--log-level, else LOG_LEVEL, else INFO; a bad LOG_LEVEL is blamed on the environment."""
    if given:
        return given
    raw = (os.environ if environ is None else environ).get("LOG_LEVEL", "")
    if not raw:
        return "INFO"
    try:
        return log_level(raw)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError("environment", "LOG_LEVEL", str(exc)) from None


def resolve_config_dir(given: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> Path:
    """The configuration directory a command uses: --config-dir, else $FLOORWALKER_CONFIG_DIR, else ./firmware-config.

    Never the demo configuration shipped beside the packages: a store technician who runs a command
    in the wrong directory must hear so, not get the demo store's zones and secret.
    """
    env = os.environ if environ is None else environ
    if given:
        source, path = "--config-dir", Path(given)
    elif env.get(CONFIG_DIR_ENV):
        source, path = CONFIG_DIR_ENV, Path(env[CONFIG_DIR_ENV])
    else:
        path = Path.cwd() / CONFIG_DIR_NAME
        if not path.is_dir():
            raise ConfigError("command line", "--config-dir",
                              f"a configuration directory; there is no ./{CONFIG_DIR_NAME} in {Path.cwd()} "
                              f"(give --config-dir DIR or set {CONFIG_DIR_ENV})")
        return path
    if not path.is_dir():
        blamed = "environment" if source == CONFIG_DIR_ENV else "command line"
        raise ConfigError(blamed, source, f"an existing directory, {path} is not")
    return path


def setup_logging(level: str, filename: str | None = None) -> None:
    """Log lines are events with fields; ``LOG_FILENAME`` adds a file, as the retail demo's services do."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    filename = filename if filename is not None else os.environ.get("LOG_FILENAME", "")
    if filename:
        handlers.append(logging.FileHandler(filename))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def run_main(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, run the chosen command, and turn expected errors into one line and an exit code."""
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        args.log_level = resolve_log_level(args.log_level)
        setup_logging(args.log_level)
        return int(func(args) or 0)
    except ConfigError as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokerUnavailable as exc:
        print(f"{prog}: MQTT broker unavailable: {exc}", file=sys.stderr)
        return EXIT_NOPERM if "not authori" in str(exc).lower() or "bad user" in str(exc).lower() else EXIT_UNAVAILABLE
    except FileNotFoundError as exc:
        # an OSError names its file: say that, not "[Errno 2] No such file or directory: 'x'"
        print(f"{prog}: not found: {exc.filename if exc.filename else exc}", file=sys.stderr)
        return EXIT_NOINPUT
    except FloorwalkerError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_SOFTWARE
    except KeyboardInterrupt:
        return 130
