"""Reads of the roll-up tables, one function per stats endpoint: each a few indexed look-ups.

Rows are plain dicts with the API's field names, so the JSON and the CSV export share them.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aggregator.analytics.definitions import DWELL_BUCKETS, LOYALTY_CLASSES

Row = dict[str, Any]
MAX_RANGE_DAYS = 366
MAX_VISIT_S = 86_400.0  # visits that started this long before a day are not looked for in it

DAILY_FIELDS = ("date", "visitors", "new_visitors", "returning_visitors", "occasional_visitors", "busiest_hour",
                "busiest_hour_visitors", "passersby", "capture_rate", "visits", "door_in", "door_out")


def capture_rate(visitors: int, passersby: int) -> float | None:
    """Share of detected people who came in: visitors / (visitors + passers-by); None when nobody."""
    total = visitors + passersby
    return round(visitors / total, 4) if total else None


def daily(conn: sqlite3.Connection, first: date, last: date) -> list[Row]:
    """One row per date in [first, last], zeros where nothing was recorded."""
    rows = {r[0]: r for r in conn.execute("SELECT * FROM an_daily WHERE day BETWEEN ? AND ? ORDER BY day",
                                          (first.isoformat(), last.isoformat()))}
    out: list[Row] = []
    for i in range((last - first).days + 1):
        day = (first + timedelta(days=i)).isoformat()
        r = rows.get(day) or (day, 0, 0, 0, 0, None, 0, 0, 0, 0, 0)
        _d, visitors, new, returning, occasional, hour, hour_visitors, passersby, visits, door_in, door_out = r
        out.append({"date": day, "visitors": visitors, "new_visitors": new, "returning_visitors": returning,
                    "occasional_visitors": occasional, "busiest_hour": hour, "busiest_hour_visitors": hour_visitors,
                    "passersby": passersby, "capture_rate": capture_rate(visitors, passersby), "visits": visits,
                    "door_in": door_in, "door_out": door_out})
    return out


def zones(conn: sqlite3.Connection, day: date) -> list[Row]:
    """Zones by unique visitors that day; rank 1 = most (ties: zone name); top5 = rank <= 5."""
    return [{"zone": z, "visitors": n, "rank": rank, "top5": rank <= 5}
            for z, n, rank in conn.execute("SELECT zone, visitors, rank FROM an_zone WHERE day = ? ORDER BY rank",
                                           (day.isoformat(),))]


def hourly(conn: sqlite3.Connection, day: date, *, timezone: str = "UTC") -> list[Row]:
    """24 local hours: unique visitors, door in/out, occupancy (running in - out, never below 0) and
    ``people``, the estimate of people in the store on average over the hour (:func:`people_by_hour`)."""
    people = people_by_hour(conn, day, timezone)
    d = day.isoformat()
    visitors = dict(conn.execute("SELECT hour, visitors FROM an_hourly WHERE day = ?", (d,)).fetchall())
    doors = {h: (i, o) for h, i, o in conn.execute("SELECT hour, door_in, door_out FROM an_door_hour WHERE day = ?",
                                                   (d,))}
    out: list[Row] = []
    occupancy = 0
    for hour in range(24):
        door_in, door_out = doors.get(hour, (0, 0))
        occupancy = max(0, occupancy + door_in - door_out)
        out.append({"hour": hour, "visitors": visitors.get(hour, 0), "door_in": door_in, "door_out": door_out,
                    "occupancy": occupancy, "people": people[hour]})
    return out


def _hour_starts(day: date, timezone: str) -> list[float]:
    """Epoch seconds of each local hour's start, and of the next day's (25 values; on a DST day one hour
    is empty or two hours long)."""
    tz = ZoneInfo(timezone)
    nxt = day + timedelta(days=1)
    return [*(datetime(day.year, day.month, day.day, h, tzinfo=tz).timestamp() for h in range(24)),
            datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()]


def people_by_hour(conn: sqlite3.Connection, day: date, timezone: str) -> list[float | None]:
    """Mean number of people in the store during each local hour of ``day``, from the visits.

    A visit is one linked identity (the agents link a phone's random MACs into one pseudo-device, and
    fixtures and devices next door open no visit), so the time-weighted count of open visits is the
    people estimate from linked identities; passers-by are left out as in every other figure. None for
    hours before the oldest stored visit (retention deleted them, or nothing was recorded yet)."""
    bounds = _hour_starts(day, timezone)
    oldest = conn.execute("SELECT MIN(start_ts) FROM visits").fetchone()[0]
    present_s = [0.0] * 24
    rows = conn.execute("SELECT start_ts, COALESCE(end_ts, last_seen_ts, start_ts) FROM visits "
                        "WHERE passerby = 0 AND start_ts >= ? AND start_ts < ?",
                        (bounds[0] - MAX_VISIT_S, bounds[-1]))
    for start, end in rows:
        first = max(0, bisect.bisect_right(bounds, start) - 1)
        for h in range(first, 24):
            if bounds[h] >= end:
                break
            present_s[h] += max(0.0, min(end, bounds[h + 1]) - max(start, bounds[h]))
    return [None if oldest is None or bounds[h + 1] <= oldest else
            round(present_s[h] / max(bounds[h + 1] - bounds[h], 1.0), 2) for h in range(24)]


def visitors(conn: sqlite3.Connection, day: date, *, limit: int, offset: int) -> tuple[int, list[Row]]:
    """That day's visitors by id, a page at a time: favourite zone and zones entered more than once."""
    d = day.isoformat()
    total = conn.execute("SELECT COUNT(*) FROM an_visitor_day WHERE day = ? AND is_visitor = 1", (d,)).fetchone()[0]
    rows = conn.execute("SELECT visitor, favourite_zone, favourite_entries, multi_zones, loyalty FROM an_visitor_day "
                        "WHERE day = ? AND is_visitor = 1 ORDER BY visitor LIMIT ? OFFSET ?", (d, limit, offset))
    return total, [{"visitor": v, "favourite_zone": fav, "favourite_zone_entries": n,
                    "zones_entered_more_than_once": json.loads(multi), "loyalty": loyalty}
                   for v, fav, n, multi, loyalty in rows]


def dwell(conn: sqlite3.Connection, day: date) -> list[Row]:
    """Visits (not passers-by) started that day, by duration bucket; every bucket listed."""
    counts = dict(conn.execute("SELECT bucket, visits FROM an_dwell WHERE day = ?", (day.isoformat(),)).fetchall())
    return [{"bucket": label, "min_s": lower, "visits": counts.get(label, 0)} for lower, label in DWELL_BUCKETS]


def loyalty(conn: sqlite3.Connection, day: date) -> list[Row]:
    """That day's visitors as first-time / returning (within 7 days) / occasional, plus passers-by."""
    d = day.isoformat()
    counts = dict(conn.execute("SELECT loyalty, COUNT(*) FROM an_visitor_day WHERE day = ? AND is_visitor = 1 "
                               "GROUP BY loyalty", (d,)).fetchall())
    passersby = conn.execute("SELECT passersby FROM an_daily WHERE day = ?", (d,)).fetchone()
    rows: list[Row] = [{"category": c, "visitors": counts.get(c, 0)} for c in LOYALTY_CLASSES]
    rows.append({"category": "passersby", "visitors": passersby[0] if passersby else 0})
    return rows


def days_with_data(conn: sqlite3.Connection) -> tuple[str | None, str | None]:
    row = conn.execute("SELECT MIN(day), MAX(day) FROM an_daily").fetchone()
    return row[0], row[1]
