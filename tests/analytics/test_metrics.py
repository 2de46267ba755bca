"""Each statistic on a small hand-made day whose answers can be worked out on paper."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from aggregator.analytics import queries
from aggregator.analytics.definitions import AnalyticsParams
from aggregator.analytics.rollup import Rollup
from tests.analytics.streams import Writer

TZ = "Asia/Kolkata"
DAY = date(2026, 3, 11)


def at(hour: int, minute: int = 0, day: date = DAY) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(TZ)).timestamp()


@pytest.fixture
def day_db(core_db: sqlite3.Connection) -> sqlite3.Connection:
    w = Writer(core_db)
    # v1: 10:00-10:40, Sport twice (left for 15 min), Men's once. Also seen 3 days earlier -> returning.
    w.visit("v1-a", "v1", at(10), at(10, 40))
    for minute, zone in [(0, "Sport"), (5, "Sport"), (10, "Men's"), (25, "Sport"), (40, None)]:
        w.sighting(at(10, minute), "v1", zone, "v1-a")
    w.visit("v1-old", "v1", at(12, 0, date(2026, 3, 8)), at(12, 3, date(2026, 3, 8)))
    w.sighting(at(12, 0, date(2026, 3, 8)), "v1", "Women's", "v1-old")
    # v2: 11:00-11:04, Men's -> first time, dwell < 5 min. v3: 10:30-18:00 (dwell 6h+), Women's; last seen 9 days ago.
    w.visit("v2-a", "v2", at(11), at(11, 4))
    w.sighting(at(11), "v2", "Men's", "v2-a")
    w.visit("v3-a", "v3", at(10, 30), at(18))
    w.sighting(at(10, 30), "v3", "Women's", "v3-a")
    w.sighting(at(11, 30), "v3", "Women's", "v3-a")
    w.visit("v3-old", "v3", at(9, 0, date(2026, 3, 2)), at(9, 30, date(2026, 3, 2)))
    w.sighting(at(9, 0, date(2026, 3, 2)), "v3", "Sport", "v3-old")
    # p1: a passer-by (its sighting must not count anywhere but passers-by).
    w.visit("p1-a", "p1", at(10, 10), at(10, 11), passerby=1)
    w.sighting(at(10, 10), "p1", None, "p1-a")
    # Door: 3 in at 10:xx, 1 out at 11:xx, 3 out at 12:xx (one more out than in: occupancy floors at 0).
    for i in range(3):
        w.door(f"in-{i}", at(10, i), "in")
    w.door("out-0", at(11, 5), "out")
    for i in range(3):
        w.door(f"out-late-{i}", at(12, i), "out")
    w.door("in-0", at(10, 0), "in")  # duplicate message id: stored once
    Rollup(core_db, AnalyticsParams(timezone=TZ)).update()
    return core_db


def test_daily_figures(day_db: sqlite3.Connection) -> None:
    [row] = queries.daily(day_db, DAY, DAY)
    assert row == {"date": "2026-03-11", "visitors": 3, "new_visitors": 1, "returning_visitors": 1,
                   "occasional_visitors": 1, "busiest_hour": 10, "busiest_hour_visitors": 2, "passersby": 1,
                   "capture_rate": 0.75, "visits": 3, "door_in": 3, "door_out": 4}


def test_busiest_hour_tie_goes_to_the_earlier_hour(day_db: sqlite3.Connection) -> None:
    hours = {r["hour"]: r["visitors"] for r in queries.hourly(day_db, DAY)}
    assert (hours[10], hours[11]) == (2, 2)  # v1+v3 at 10, v2+v3 at 11
    assert queries.daily(day_db, DAY, DAY)[0]["busiest_hour"] == 10


def test_zone_ranking_ties_by_name(day_db: sqlite3.Connection) -> None:
    assert queries.zones(day_db, DAY) == [
        {"zone": "Men's", "visitors": 2, "rank": 1, "top5": True},
        {"zone": "Sport", "visitors": 1, "rank": 2, "top5": True},
        {"zone": "Women's", "visitors": 1, "rank": 3, "top5": True},
    ]


def test_visitors_favourite_zone_and_repeat_entries(day_db: sqlite3.Connection) -> None:
    total, rows = queries.visitors(day_db, DAY, limit=2, offset=0)
    assert total == 3
    assert rows[0] == {"visitor": "v1", "favourite_zone": "Sport", "favourite_zone_entries": 2,
                       "zones_entered_more_than_once": ["Sport"], "loyalty": "returning"}
    assert [r["visitor"] for r in rows] == ["v1", "v2"]
    assert [r["visitor"] for r in queries.visitors(day_db, DAY, limit=2, offset=2)[1]] == ["v3"]


def test_dwell_buckets(day_db: sqlite3.Connection) -> None:
    assert {r["bucket"]: r["visits"] for r in queries.dwell(day_db, DAY)} == {
        "<5m": 1, "5-20m": 0, "20-60m": 1, "1-6h": 0, "6h+": 1}


def test_loyalty(day_db: sqlite3.Connection) -> None:
    assert {r["category"]: r["visitors"] for r in queries.loyalty(day_db, DAY)} == {
        "first_time": 1, "returning": 1, "occasional": 1, "passersby": 1}


def test_door_counts_and_occupancy(day_db: sqlite3.Connection) -> None:
    rows = {r["hour"]: r for r in queries.hourly(day_db, DAY)}
    assert [(rows[h]["door_in"], rows[h]["door_out"], rows[h]["occupancy"]) for h in (9, 10, 11, 12, 13)] == [
        (0, 0, 0), (3, 0, 3), (0, 1, 2), (0, 3, 0), (0, 0, 0)]


def test_daily_range_fills_empty_days(day_db: sqlite3.Connection) -> None:
    rows = queries.daily(day_db, date(2026, 3, 7), date(2026, 3, 9))
    assert [(r["date"], r["visitors"], r["capture_rate"]) for r in rows] == [
        ("2026-03-07", 0, None), ("2026-03-08", 1, 1.0), ("2026-03-09", 0, None)]


def test_hourly_people_is_the_mean_of_linked_identities_present(day_db: sqlite3.Connection) -> None:
    people = {r["hour"]: r["people"] for r in queries.hourly(day_db, DAY, timezone=TZ)}
    # v1 10:00-10:40 and v3 from 10:30: 70 person-minutes in hour 10; v2 11:00-11:04 and v3: 64; the passer-by
    # p1 is left out; v3 alone until 18:00
    assert [people[h] for h in (9, 10, 11, 12, 17, 18)] == [0.0, round(70 / 60, 2), round(64 / 60, 2), 1.0, 1.0, 0.0]
    assert people[0] == 0.0 and len(people) == 24


def test_hourly_people_is_unknown_before_the_oldest_stored_visit(day_db: sqlite3.Connection) -> None:
    assert {r["people"] for r in queries.hourly(day_db, date(2026, 2, 20), timezone=TZ)} == {None}
    oldest_day = {r["hour"]: r["people"] for r in queries.hourly(day_db, date(2026, 3, 2), timezone=TZ)}
    assert oldest_day[8] is None and oldest_day[9] == 0.5  # the stored data starts at 09:00 that day
