"""Local days and hours, dwell buckets and loyalty classes, at their edges."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from aggregator.analytics.definitions import LocalClock, dwell_bucket, loyalty_class


@pytest.mark.parametrize(("duration_s", "bucket"), [
    (0, "<5m"), (299.9, "<5m"), (300, "5-20m"), (1199, "5-20m"), (1200, "20-60m"), (3599, "20-60m"),
    (3600, "1-6h"), (21599, "1-6h"), (21600, "6h+"), (90000, "6h+"), (-5, "<5m"),
])
def test_dwell_bucket_edges(duration_s: float, bucket: str) -> None:
    assert dwell_bucket(duration_s) == bucket


@pytest.mark.parametrize(("day", "previous", "expected"), [
    ("2026-03-10", None, "first_time"),
    ("2026-03-10", "2026-03-09", "returning"),
    ("2026-03-10", "2026-03-03", "returning"),    # exactly 7 days
    ("2026-03-10", "2026-03-02", "occasional"),   # 8 days
])
def test_loyalty_class(day: str, previous: str | None, expected: str) -> None:
    assert loyalty_class(day, previous) == expected


def test_local_day_and_hour_in_a_non_utc_zone_across_midnight() -> None:
    clock = LocalClock("Asia/Kolkata")  # UTC+05:30, no DST
    midnight = datetime(2026, 3, 11, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp()
    assert clock.day_hour(midnight - 1) == ("2026-03-10", 23)
    assert clock.day_hour(midnight) == ("2026-03-11", 0)
    assert clock.day_hour(midnight + 3599) == ("2026-03-11", 0)
    # 18:29:59 UTC is still the previous local day; the UTC date would say otherwise at 18:30.
    assert datetime.fromtimestamp(midnight, ZoneInfo("UTC")).strftime("%H:%M") == "18:30"


@pytest.mark.parametrize(("day", "hours"), [("2026-03-29", 23), ("2026-10-25", 25), ("2026-06-01", 24)])
def test_local_day_length_on_dst_days(day: str, hours: int) -> None:
    start, end = LocalClock("Europe/Warsaw").bounds(day)
    assert end - start == hours * 3600


def test_local_clock_cache_stays_bounded_as_time_passes() -> None:
    """Regression: the slot cache grew by one entry every 15 minutes of a running aggregator."""
    clock = LocalClock("Europe/Warsaw")
    start, _ = clock.bounds("2026-01-01")
    for slot in range(3 * LocalClock.CACHE_SLOTS):
        clock.day_hour(start + slot * 900)
    assert len(clock._cache) <= LocalClock.CACHE_SLOTS
    assert clock.day_hour(start + 3600) == ("2026-01-01", 1)  # still right after the reset


def test_days_between_spans_every_local_day() -> None:
    clock = LocalClock("Europe/Warsaw")
    start, _ = clock.bounds("2026-03-10")
    assert clock.days_between(start + 3600, start + 2 * 86400 + 3600) == ["2026-03-10", "2026-03-11", "2026-03-12"]
