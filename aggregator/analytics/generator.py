"""Realistic synthetic history (seed 002's idea): weeks of visits, sightings and door counts in bulk.

Traffic follows a weekly profile (busy Saturdays, quiet Sundays) and an hourly one (lunch and
after-work peaks, shop open 09-21 local); a quarter of detections are passers-by (a brief probe
near the entrance); visitors are regulars (come back within days), casual (now and then) or new,
and each prefers some zones. Deterministic for a given seed. Rows go in with executemany, one
transaction per day, so 30 days x 5,000 visits take seconds, not minutes.
"""

from __future__ import annotations

import functools
import math
import random
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from agent.geometry import Plan, Point, Zone

# Relative traffic Monday..Sunday (mean 1.0): retail footfall peaks on Saturday, dips on Sunday.
WEEKDAY_FACTOR = (0.85, 0.85, 0.9, 0.95, 1.1, 1.45, 0.9)
# Share of arrivals per local opening hour 9..20 (lunch and after-work peaks); weekend is flatter.
WEEKDAY_HOURS = {9: 3, 10: 5, 11: 7, 12: 10, 13: 11, 14: 8, 15: 7, 16: 8, 17: 11, 18: 13, 19: 10, 20: 7}
WEEKEND_HOURS = {9: 4, 10: 7, 11: 10, 12: 11, 13: 11, 14: 10, 15: 10, 16: 10, 17: 9, 18: 8, 19: 6, 20: 4}
# Some zones draw more people than others (the first declared zone most), whoever the shopper is.
ZONE_POPULARITY = (1.6, 1.0, 0.8, 1.3, 0.6, 1.1, 0.9)
PASSERBY_SHARE = 0.25
SIGHTING_EVERY_S = 90.0  # a fused position about every 1.5 min of a visit (phones probe in bursts)
DOOR_DETECTION = 0.95    # beam counters miss a few crossings (people walking side by side)
Progress = Callable[[int], None]
DayRows = tuple[list[tuple], list[tuple], list[tuple], list[tuple]]


@dataclass(frozen=True, slots=True)
class GenerateResult:
    days: int
    visits: int
    sightings: int
    door_events: int


class _People:
    """Who comes: regulars (a small pool, often), casual shoppers (a big pool, rarely) or someone new."""

    def __init__(self, rng: random.Random, visits_per_day: int, customer_ids: Sequence[str], seed: int) -> None:
        self.rng = rng
        self.seed = seed
        self.regulars = [self._device() for _ in range(max(10, visits_per_day // 3))]
        self.casual = [self._device() for _ in range(max(50, visits_per_day * 8))]
        # The first regulars are loyalty-card customers: their visitor id is the customer id.
        self.customer_of = dict(zip(self.regulars, customer_ids, strict=False))
        self._prefs: dict[str, list[float]] = {}

    def _device(self) -> str:
        return f"d-{self.rng.getrandbits(40):010x}"

    def pick(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return self.regulars[int(len(self.regulars) * self.rng.random() ** 2)]
        if r < 0.7:
            return self.rng.choice(self.casual)
        return self._device()

    def preferences(self, device: str, n_zones: int) -> list[float]:
        prefs = self._prefs.get(device)
        if prefs is None:
            own = random.Random(f"{self.seed}:{device}")
            prefs = [(own.random() ** 3 + 0.05) * ZONE_POPULARITY[i % len(ZONE_POPULARITY)] for i in range(n_zones)]
            if device in self.customer_of or len(self._prefs) < 100_000:
                self._prefs[device] = prefs
        return prefs


@functools.cache
def _is_rectangle(zone: Zone) -> bool:
    """An axis-aligned rectangle: every point of its bounding box is in it (edges are inclusive)."""
    x0, y0, x1, y1 = zone.bbox
    return len(zone.polygon) == 4 and {(x, y) for x, y in zone.polygon} == {(x0, y0), (x0, y1), (x1, y0), (x1, y1)}


def _point_in(zone: Zone, rng: random.Random) -> Point:
    x0, y0, x1, y1 = zone.bbox
    if _is_rectangle(zone):  # the common case, without the polygon test: the same draws, the same point
        return (rng.uniform(x0, x1), rng.uniform(y0, y1))
    for _ in range(20):
        p = (rng.uniform(x0, x1), rng.uniform(y0, y1))
        if zone.contains(p):
            return p
    return zone.centroid


def generate(conn: sqlite3.Connection, *, plan: Plan, entrance: Point, timezone: str, days: int,
             visits_per_day: int = 5000, seed: int = 0, end_day: date | None = None,
             customer_ids: Sequence[str] = (), progress: Progress | None = None) -> GenerateResult:
    """Write ``days`` local days of traffic ending with ``end_day`` (default yesterday) into the core tables."""
    seq = int(conn.execute("SELECT MAX(seq) FROM visits").fetchone()[0] or 0)
    totals = [0, 0, 0]
    for visits, sightings, doors, links in generate_days(plan=plan, entrance=entrance, timezone=timezone,
                                                         days=days, visits_per_day=visits_per_day, seed=seed,
                                                         end_day=end_day, customer_ids=customer_ids,
                                                         first_seq=seq):
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO visits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", visits)
            conn.executemany("INSERT INTO sightings(ts, visitor, device, visit_id, x, y, accuracy_m, zone) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", sightings)
            conn.executemany("INSERT OR IGNORE INTO door_events VALUES (?, ?, ?, ?, ?)", doors)
            conn.executemany("INSERT OR IGNORE INTO links VALUES (?, ?, ?)", links)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        totals[0] += len(visits)
        totals[1] += len(sightings)
        totals[2] += len(doors)
        if progress:
            progress(1)
    return GenerateResult(days, *totals)


def generate_days(*, plan: Plan, entrance: Point, timezone: str, days: int, visits_per_day: int = 5000,
                  seed: int = 0, end_day: date | None = None, customer_ids: Sequence[str] = (),
                  first_seq: int = 0) -> Iterator[DayRows]:
    """The rows :func:`generate` writes, a local day at a time, without a database: ``(visits, sightings,
    door_events, links)`` as tuples in the tables' column order (sightings without their id); visit
    ``seq`` numbers continue from ``first_seq``. The chain generator ships them straight from here."""
    tz = ZoneInfo(timezone)
    last = end_day or (datetime.now(tz).date() - timedelta(days=1))
    rng = random.Random(seed)
    people = _People(rng, visits_per_day, customer_ids, seed)
    seq = first_seq
    for i in range(days):
        day = last - timedelta(days=days - 1 - i)
        rows = _day(day, tz, rng, people, plan, entrance, visits_per_day, seed, seq)
        seq += len(rows[0])
        yield rows


def _day(day: date, tz: ZoneInfo, rng: random.Random, people: _People, plan: Plan, entrance: Point,
         visits_per_day: int, seed: int, seq: int) -> tuple[list[tuple], list[tuple], list[tuple], list[tuple]]:
    weekend = day.weekday() >= 5
    profile = WEEKEND_HOURS if weekend else WEEKDAY_HOURS
    hours, weights = list(profile), list(profile.values())
    hour_start = {h: datetime(day.year, day.month, day.day, h, tzinfo=tz).timestamp() for h in hours}
    n = round(visits_per_day * WEEKDAY_FACTOR[day.weekday()])
    zones = plan.zones
    visits: list[tuple] = []
    sightings: list[tuple] = []
    doors: list[tuple] = []
    links: list[tuple] = []
    for k, hour in enumerate(rng.choices(hours, weights, k=n)):
        start = hour_start[hour] + rng.random() * 3600
        visit_id = f"gen{seed}-{day.isoformat()}-{k}"
        device = people.pick()
        customer = people.customer_of.get(device)
        visitor = customer or device
        seq += 1
        if customer:
            links.append((device, customer, start))
        if rng.random() < PASSERBY_SHARE:  # heard briefly near the door, never came in
            end = start + rng.uniform(15, 110)
            for ts in sorted({start, end} if rng.random() < 0.5 else {start}):
                x, y = entrance[0] + rng.gauss(0, 30), max(0.0, entrance[1] + rng.gauss(0, 15))
                sightings.append((ts, visitor, device, visit_id, x, y, 6.0, None))
            visits.append((visit_id, visitor, device, customer, start, end, end, 1, seq))
            continue
        duration = _duration_s(rng)
        end = start + duration
        _walk(sightings, rng, zones, people.preferences(device, len(zones)), entrance, start, end,
              (visitor, device, visit_id))
        visits.append((visit_id, visitor, device, customer, start, end, end, 0, seq))
        if rng.random() < DOOR_DETECTION:
            doors.append((f"{visit_id}-in", start, "agent-1", "door", "in"))
        if rng.random() < DOOR_DETECTION:
            doors.append((f"{visit_id}-out", end, "agent-1", "door", "out"))
    return visits, sightings, doors, links


def _duration_s(rng: random.Random) -> float:
    """Log-normal around 15 minutes (store dwell studies report medians of 10-20 min), a few all-day."""
    if rng.random() < 0.003:
        return rng.uniform(6 * 3600, 8 * 3600)
    return min(5 * 3600.0, max(150.0, math.exp(rng.gauss(math.log(900), 0.8))))


def _walk(out: list[tuple], rng: random.Random, zones: Sequence[Zone], prefs: list[float], entrance: Point,
          start: float, end: float, ids: tuple[str, str, str]) -> None:
    """Entrance, a few zone stops (revisits allowed, not back to back), entrance again."""
    visitor, device, visit_id = ids
    out.append((start, visitor, device, visit_id, entrance[0], entrance[1] + 20, 4.0, None))
    n_stops = max(1, min(6, int((end - start) / 480) + rng.randint(0, 1)))
    stops: list[Zone] = []
    for _ in range(n_stops):
        zone = rng.choices(zones, prefs)[0]
        if stops and zone is stops[-1] and len(zones) > 1:
            zone = rng.choice([z for z in zones if z is not zone])
        stops.append(zone)
    walk_s = 45.0
    span = max(1.0, (end - start - 2 * walk_s) / n_stops)
    t = start + walk_s
    for zone in stops:
        stop_end = t + span
        while t < stop_end:
            x, y = _point_in(zone, rng)
            out.append((t, visitor, device, visit_id, x, y, rng.uniform(1.0, 4.0), zone.name))
            t += rng.uniform(0.5, 1.5) * SIGHTING_EVERY_S
        t = stop_end
    out.append((end, visitor, device, visit_id, entrance[0], entrance[1] + 20, 4.0, None))
