"""The chain figures computed independently of Flink: plain Python over the shipped files, and DuckDB.

Both follow docs/ANALYTICS.md's definitions directly (per visitor-day, then per day), not the
shape of the Flink SQL, so a mistake in the SQL shows as a difference.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

from tests.chain.conftest import read_rows

DWELL = (("dwell_lt_5m", 0, 300), ("dwell_5_20m", 300, 1200), ("dwell_20_60m", 1200, 3600),
         ("dwell_1_6h", 3600, 21600), ("dwell_6h_plus", 21600, float("inf")))


def python_daily(chain: Path, first: str, last: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(store or '*', date) -> the daily figures."""
    zone_visits = [z for z in read_rows(chain, "zone_visits") if z["date"] <= last]
    visits = [v for v in read_rows(chain, "visits") if first <= v["date"] <= last]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for scope in [*sorted({z["store"] for z in zone_visits} | {v["store"] for v in visits}), "*"]:
        mine = [z for z in zone_visits if scope in ("*", z["store"])]
        days_of: dict[str, set[str]] = defaultdict(set)
        hour_people: dict[tuple[str, int], set[str]] = defaultdict(set)
        for z in mine:
            days_of[z["person"]].add(z["date"])
            hour_people[(z["date"], z["hour"])].add(z["person"])
        people_on: dict[str, set[str]] = defaultdict(set)
        for person, days in days_of.items():
            for d in days:
                people_on[d].add(person)
        my_visits = [v for v in visits if scope in ("*", v["store"])]
        for day in sorted({d for d in people_on if first <= d <= last} | {v["date"] for v in my_visits}):
            row = {"visitors": len(people_on.get(day, ())), "new_visitors": 0, "returning_visitors": 0,
                   "occasional_visitors": 0}
            for person in people_on.get(day, ()):
                earlier = [d for d in days_of[person] if d < day]
                if not earlier:
                    row["new_visitors"] += 1
                elif (date.fromisoformat(day) - date.fromisoformat(max(earlier))).days <= 7:
                    row["returning_visitors"] += 1
                else:
                    row["occasional_visitors"] += 1
            hours = sorted(((-len(p), h) for (d, h), p in hour_people.items() if d == day))
            row["busiest_hour"] = hours[0][1] if hours else None
            row["busiest_hour_visitors"] = -hours[0][0] if hours else 0
            counted = [v for v in my_visits if v["date"] == day and not v["passerby"]]
            row["visits"] = len(counted)
            for name, low, high in DWELL:
                row[name] = sum(1 for v in counted if low <= v["duration_s"] < high)
            passers = {v["person"] for v in my_visits if v["date"] == day and v["passerby"]}
            row["passersby"] = len(passers - people_on.get(day, set()))
            out[(scope, day)] = row
    return out


def python_zones(chain: Path, first: str, last: str) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """(store or '*', date) -> [(zone, visitors)] in rank order."""
    people: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for z in read_rows(chain, "zone_visits"):
        if z["zone"] and first <= z["date"] <= last:
            for scope in (z["store"], "*"):
                people[(scope, z["date"], z["zone"])].add(z["person"])
    out: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for (scope, day, zone), who in people.items():
        out[(scope, day)].append((zone, len(who)))
    return {k: sorted(v, key=lambda zv: (-zv[1], zv[0])) for k, v in out.items()}
