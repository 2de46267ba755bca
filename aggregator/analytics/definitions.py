"""The footfall definitions in code: local days and hours, dwell buckets, loyalty classes.

Every number a stats endpoint returns is defined here or in :mod:`aggregator.analytics.facts`;
docs/ANALYTICS.md says the same in words. Days and hours are the store's local ones
(StoreConfig.timezone), because "Saturday's busiest hour" means the shop's clock, not UTC.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

# A zone entry needs the visitor to have been away from the zone this long (issue 8 default).
DEFAULT_ZONE_GAP_S = 600.0
# "Returning within 7 days": the previous visiting day is 1..7 calendar days earlier.
RETURNING_WINDOW_DAYS = 7

# Dwell buckets by visit duration: lower bound (inclusive) in seconds and the label the API uses.
DWELL_BUCKETS: tuple[tuple[float, str], ...] = (
    (0.0, "<5m"),
    (300.0, "5-20m"),
    (1200.0, "20-60m"),
    (3600.0, "1-6h"),
    (21600.0, "6h+"),
)
LOYALTY_CLASSES = ("first_time", "returning", "occasional")


def dwell_bucket(duration_s: float) -> str:
    """The label of the bucket a visit of ``duration_s`` falls in (negative durations count as 0)."""
    label = DWELL_BUCKETS[0][1]
    for lower_s, name in DWELL_BUCKETS:
        if duration_s >= lower_s:
            label = name
    return label


def loyalty_class(day: str, previous_visiting_day: str | None) -> str:
    """first_time without an earlier visiting day; returning if it was 1..7 days before; else occasional."""
    if previous_visiting_day is None:
        return "first_time"
    days = (date.fromisoformat(day) - date.fromisoformat(previous_visiting_day)).days
    return "returning" if days <= RETURNING_WINDOW_DAYS else "occasional"


def zone_gap_from_env(default_s: float = DEFAULT_ZONE_GAP_S) -> float:
    """``FLOORWALKER_ZONE_GAP_S`` overrides the zone-entry gap for the server and the commands alike."""
    raw = os.environ.get("FLOORWALKER_ZONE_GAP_S", "")
    try:
        value = float(raw) if raw else default_s
    except ValueError:
        return default_s
    return value if 0 < value < 86400 else default_s


@dataclass(frozen=True, slots=True)
class AnalyticsParams:
    """What the roll-ups depend on besides the rows: if either changes, they are rebuilt."""

    timezone: str = "UTC"
    zone_gap_s: float = DEFAULT_ZONE_GAP_S

    def key(self) -> str:
        return f"tz={self.timezone};gap_s={self.zone_gap_s:g}"


class LocalClock:
    """Epoch seconds -> (local date 'YYYY-MM-DD', local hour), cached per 15 minutes of UTC.

    Every IANA offset in use is a multiple of 15 minutes and transitions happen on such
    boundaries, so all instants of one 15-minute UTC slot share a local date and hour; the cache
    turns a zoneinfo conversion per sighting into a dict lookup (recompute reads millions). The
    cache is bounded: a running aggregator meets a new slot every 15 minutes for ever, so at
    ``CACHE_SLOTS`` it starts again (a slot costs one zoneinfo conversion to refill)."""

    CACHE_SLOTS = 8192  # 85 days of 15-minute slots: the 30-day retention of sightings fits, with room

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self._cache: dict[int, tuple[str, int]] = {}

    def day_hour(self, ts: float) -> tuple[str, int]:
        key = int(ts // 900)
        value = self._cache.get(key)
        if value is None:
            local = datetime.fromtimestamp(key * 900, self.tz)
            value = (local.date().isoformat(), local.hour)
            if len(self._cache) >= self.CACHE_SLOTS:
                self._cache.clear()
            self._cache[key] = value
        return value

    def day(self, ts: float) -> str:
        return self.day_hour(ts)[0]

    def bounds(self, day: str) -> tuple[float, float]:
        """[start, end) of a local day in epoch seconds (23 or 25 hours long on DST days)."""
        d = date.fromisoformat(day)
        start = datetime(d.year, d.month, d.day, tzinfo=self.tz).timestamp()
        nxt = d + timedelta(days=1)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self.tz).timestamp()
        return start, end

    def days_between(self, start_ts: float, end_ts: float) -> list[str]:
        """Every local day from the one holding ``start_ts`` to the one holding ``end_ts``."""
        first = date.fromisoformat(self.day(start_ts))
        last = date.fromisoformat(self.day(max(start_ts, end_ts)))
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
