"""Run Floorwalker's benchmarks and print their figures.

    python tests/benchmarks/run.py [NAME ...] [--json]

Each benchmark is a module ``tests/benchmarks/bench_<name>.py`` with a ``run(args)`` generator
of :class:`Figure`. All of them run by default but those in ``BY_NAME_ONLY`` (decision records:
runnable by name). The output is one markdown table (figure,
target, measured, reference), or with ``--json`` one JSON object per figure per line.
Benchmarks print numbers; they never fail a build and are never part of the test run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.benchmarks.figures import Figure  # noqa: E402

BY_NAME_ONLY = {"mqtt_routes"}  # which MQTT client (docs/PERFORMANCE.md): minutes of drains, decided already


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}"


def table(figures: list[Figure]) -> str:
    lines = ["| figure | target | measured | reference |", "|---|---|---|---|"]
    for f in figures:
        mark = {True: " ✅", False: " ❌", None: ""}[f.met()]
        measured = f"{_fmt(f.value)} {f.unit}".strip() + mark
        lines.append(f"| {f.figure} | {f.target or ''} | {measured} | {f.reference or ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default all but {', '.join(sorted(BY_NAME_ONLY))}: "
                             f"{', '.join(n for n in available() if n not in BY_NAME_ONLY)})")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure per line")
    parser.add_argument("--quick", action="store_true", help="smaller loads, for a smoke run")
    args = parser.parse_args(argv)
    names = args.names or [n for n in available() if n not in BY_NAME_ONLY]
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
    figures: list[Figure] = []
    failed = 0
    for name in names:
        started = time.monotonic()
        print(f"# running {name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(f"tests.benchmarks.bench_{name}")
        try:
            for figure in module.run(args):
                figures.append(figure)
                if args.json:
                    print(json.dumps(figure.as_json()), flush=True)
        except Exception:  # a broken benchmark is reported, the others still run
            failed += 1
            traceback.print_exc()
            figures.append(Figure(f"{name}.error", None, note="benchmark raised; see stderr"))
        print(f"# {name} took {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    if not args.json:
        print(table(figures))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
