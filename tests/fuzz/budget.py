"""How many cases each fuzz test runs: ``FUZZ_CASES`` (total budget) split over the fuzz tests.

The README's test command runs a few thousand cases in all; ``FUZZ_CASES=100000 pytest -m fuzz``
runs the full count the reliability issue asks for.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

DEFAULT_TOTAL = 4000
FUZZ_TESTS = 20  # roughly how many fuzz tests share the budget


def cases(weight: float = 1.0) -> int:
    total = int(os.environ.get("FUZZ_CASES", DEFAULT_TOTAL))
    return max(20, int(total * weight / FUZZ_TESTS))


def fuzz_settings(weight: float = 1.0) -> settings:
    return settings(max_examples=cases(weight), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
