"""Zone entries, favourite zone and zones entered more than once, from one visitor's sightings."""

from __future__ import annotations

from aggregator.analytics.definitions import LocalClock
from aggregator.analytics.facts import visitor_day_facts

CLOCK = LocalClock("UTC")
DAY0 = 1_773_100_800.0  # 2026-03-10 00:00 UTC


def _facts(rows: list[tuple[float, str | None]], gap_s: float = 600.0):
    return visitor_day_facts([(DAY0 + t, z) for t, z in rows], CLOCK, gap_s)


def test_coming_back_after_the_gap_is_a_new_entry_and_before_it_is_not() -> None:
    f = _facts([(36000, "A"), (36300, "A"), (36300, "A"), (36900, "A"), (37500, "A"), (40000, "B")])["2026-03-10"]
    # 36000 entry; 36300 +5 min no; duplicate no; 36900 is 10 min after 36300 -> entry; 37500 -> entry
    assert f.zone_entries == {"A": 3, "B": 1}
    assert f.hours == {10, 11}
    assert f.favourite() == ("A", 3)
    assert f.zones_entered_more_than_once() == ["A"]


def test_being_elsewhere_does_not_reset_the_gap() -> None:
    f = _facts([(0, "A"), (60, "B"), (120, "A")])["2026-03-10"]
    assert f.zone_entries == {"A": 1, "B": 1}


def test_favourite_ties_go_to_the_zone_name() -> None:
    f = _facts([(0, "Sport"), (10, "Men's"), (20, None)])["2026-03-10"]
    assert f.favourite() == ("Men's", 1)
    assert f.zones_entered_more_than_once() == []


def test_an_entry_before_midnight_carries_over_without_a_new_entry() -> None:
    facts = _facts([(86400 - 120, "A"), (86400 + 60, "A"), (86400 + 1200, "A")])
    assert facts["2026-03-10"].zone_entries == {"A": 1}
    assert facts["2026-03-11"].zone_entries == {"A": 1}  # 00:01 is the same stay; 00:20 is a new entry
    assert facts["2026-03-11"].favourite() == ("A", 1)


def test_only_requested_days_are_returned() -> None:
    facts = visitor_day_facts([(DAY0 - 30, "A"), (DAY0 + 30, "A")], CLOCK, 600.0, {"2026-03-10"})
    assert list(facts) == ["2026-03-10"]
    assert facts["2026-03-10"].zone_entries == {"A": 0}
