"""Small builders shared by the offer tests."""

from __future__ import annotations

from pathlib import Path

from aggregator.offers.engine import NS_PER_S, Click
from aggregator.offers.rules import RuleSet, load_rules

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "firmware-config" / "offers.toml"
COUPONS_FILE = ROOT / "firmware-config" / "coupons.json"
T0_S = 1_700_000_000


def default_rules() -> RuleSet:
    return load_rules(RULES_FILE)


def click(t_s: float | int, item: str, category: str | None, *, user: str = "u1", gender: str | None = "F",
          age: int | None = 30, zone: str | None = None, department: str | None = None) -> Click:
    # Integer nanoseconds from an integer base, so window boundaries are exact.
    ts_ns = T0_S * NS_PER_S + (t_s * NS_PER_S if isinstance(t_s, int) else round(t_s * NS_PER_S))
    return Click(ts_ns, user, item, category, gender, age, zone, department)
