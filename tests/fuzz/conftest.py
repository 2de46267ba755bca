"""Counts the fuzz cases actually run, over every test marked ``fuzz`` (wherever it lives).

The issue asks for at least 100,000 cases in all with ``FUZZ_CASES=100000``; budget.cases() only
says how many each test *may* run (hypothesis stops early when a strategy is exhausted). So at
the end of the session this prints the real total: for hypothesis tests from hypothesis' own
per-test statistics (passing + failing cases of every phase but shrinking), for tests that run
hypothesis inside their body (the HTTP fuzz) from the ``fuzz_cases`` user property they record.
"""

from __future__ import annotations

import re

import pytest

_CASES = re.compile(r"during (\w+) phase .*?- (\d+) passing, (\d+) failing", re.S)
_ITEMS: list[pytest.Item] = []


def fuzz_cases(item: pytest.Item) -> int | None:
    for name, value in getattr(item, "user_properties", []):
        if name == "fuzz_cases":
            return int(value)
    text = getattr(item, "hypothesis_statistics", None)
    if not text:
        return None
    return sum(int(p) + int(f) for phase, p, f in _CASES.findall(text) if phase != "shrink")


def pytest_collection_finish(session: pytest.Session) -> None:
    _ITEMS[:] = [i for i in session.items if i.get_closest_marker("fuzz")]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counted = [(i, fuzz_cases(i)) for i in _ITEMS]
    ran = [(i, n) for i, n in counted if n is not None]
    if not ran:
        return
    total = sum(n for _, n in ran)
    terminalreporter.write_sep("-", f"fuzz: {total:,} cases over {len(ran)} fuzz tests")
    if terminalreporter.config.getoption("verbose") > 0:
        for item, n in sorted(ran, key=lambda x: -x[1]):
            terminalreporter.write_line(f"{n:>9,}  {item.nodeid}")
