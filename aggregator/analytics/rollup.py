"""Roll-up tables kept current from the rows not yet processed, or rebuilt from scratch.

Watermarks (an_state): the last sightings.id, visits.seq and door_events rowid folded in. An
update reads the rows above them and recomputes only what they can change: the (visitor, local
day) pairs they touch, then those days' aggregates. Because each visitor-day is recomputed from
the raw rows (never adjusted by deltas), duplicates and out-of-order arrivals cannot skew it, and
the result equals :meth:`Rollup.recompute` by construction; tests check that anyway.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from itertools import groupby
from operator import itemgetter

from aggregator.analytics.definitions import AnalyticsParams, LocalClock, dwell_bucket, loyalty_class
from aggregator.analytics.facts import DayFacts, visitor_day_facts
from aggregator.analytics.schema import ROLLUP_TABLES, begin_rollup, ensure_rollup_tables

log = logging.getLogger(__name__)

# Above this many unprocessed sightings a full rebuild is cheaper than visitor-day queries.
RECOMPUTE_ABOVE_ROWS = 200_000
_COUNTED = ("SELECT s.ts, s.zone FROM sightings s LEFT JOIN visits v ON v.visit_id = s.visit_id "
            "WHERE s.visitor = ? AND s.ts >= ? AND s.ts < ? AND COALESCE(v.passerby, 0) = 0 ORDER BY s.ts")
Progress = Callable[[int], None]


def _visitor_day_row(day: str, visitor: str, facts: DayFacts | None, is_passerby: bool,
                     loyalty: str | None) -> tuple:
    fav, fav_entries = facts.favourite() if facts else (None, 0)
    multi = json.dumps(facts.zones_entered_more_than_once() if facts else [], ensure_ascii=False)
    return (day, visitor, 1 if facts else 0, 1 if is_passerby else 0, loyalty, fav, fav_entries, multi)


def _visit_row(clock: LocalClock, visit_id: str, visitor: str, start: float | None, end: float | None,
               last: float | None, passerby: int) -> tuple:
    start_ts = start if start is not None else (last or 0.0)
    stop_ts = end if end is not None else (last if last is not None else start_ts)
    duration_s = max(0.0, stop_ts - start_ts)
    return (visit_id, visitor, clock.day(start_ts), 1 if passerby else 0, duration_s, dwell_bucket(duration_s))


class Rollup:
    """Owns the an_* tables of one SQLite connection; use it from one thread at a time."""

    def __init__(self, conn: sqlite3.Connection, params: AnalyticsParams) -> None:
        self.conn = conn
        self.params = params
        self.clock = LocalClock(params.timezone)
        ensure_rollup_tables(conn)

    # ------------------------------------------------------------------ state
    def _state(self, key: str, default: str = "") -> str:
        row = self.conn.execute("SELECT value FROM an_state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _set_state(self, **values: object) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO an_state(key, value) VALUES (?, ?)",
                              [(k, str(v)) for k, v in values.items()])

    def watermarks(self) -> tuple[int, int, int]:
        return (int(self._state("sightings_id", "0")), int(self._state("visits_seq", "0")),
                int(self._state("door_rowid", "0")))

    def heads(self) -> tuple[int, int, int]:
        row = self.conn.execute("SELECT (SELECT MAX(id) FROM sightings), (SELECT MAX(seq) FROM visits), "
                                "(SELECT MAX(rowid) FROM door_events)").fetchone()
        return tuple(int(v or 0) for v in row)  # type: ignore[return-value]

    def is_behind(self) -> bool:
        """Cheap (three index look-ups): is there anything not yet folded in, or other parameters?"""
        if self._state("params") != self.params.key():
            return True
        return any(h > w for h, w in zip(self.heads(), self.watermarks(), strict=True))

    def trimmed_days(self) -> int:
        """Days with visitors in the roll-ups but before the oldest stored sighting.

        The store's retention deletes old sightings; the roll-ups keep those days' figures, which a
        recompute could no longer rebuild (it would drop them). Callers check this first."""
        oldest = self.conn.execute("SELECT MIN(ts) FROM sightings").fetchone()[0]
        if oldest is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM an_daily WHERE visitors > 0").fetchone()[0])
        return int(self.conn.execute("SELECT COUNT(*) FROM an_daily WHERE visitors > 0 AND day < ?",
                                     (self.clock.day(oldest),)).fetchone()[0])

    # ------------------------------------------------------------------ incremental
    def update(self, *, batch_rows: int = 5000) -> int:
        """Fold in every row above the watermarks; returns how many rows were read."""
        if self._state("params") != self.params.key():
            return self.recompute()
        pending = self.heads()[0] - self.watermarks()[0]
        if pending > RECOMPUTE_ABOVE_ROWS and not self.trimmed_days():
            return self.recompute()
        total = 0
        while True:
            begin_rollup(self.conn)
            try:
                n, more = self._update_batch(batch_rows)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            total += n
            if not more:
                return total

    def _update_batch(self, limit: int) -> tuple[int, bool]:
        ws, wv, wd = self.watermarks()
        visits = self.conn.execute(
            "SELECT seq, visit_id, visitor, start_ts, end_ts, last_seen_ts, passerby FROM visits "
            "WHERE seq > ? ORDER BY seq LIMIT ?", (wv, limit)).fetchall()
        # Sightings are only judged once every visit change of this snapshot is in an_visit, so a
        # later passer-by flip is always seen as a change (see docs/ANALYTICS.md, "Incremental").
        visits_done = len(visits) < limit
        sightings = self.conn.execute("SELECT id, ts, visitor FROM sightings WHERE id > ? ORDER BY id LIMIT ?",
                                      (ws, limit)).fetchall() if visits_done else []
        doors = self.conn.execute("SELECT rowid, ts, direction FROM door_events WHERE rowid > ? ORDER BY rowid "
                                  "LIMIT ?", (wd, limit)).fetchall() if visits_done else []
        dirty: set[tuple[str, str]] = set()
        for row in visits:
            self._apply_visit(row, dirty)
        gap_s = self.params.zone_gap_s
        for _id, ts, visitor in sightings:
            dirty.add((visitor, self.clock.day(ts)))
            dirty.add((visitor, self.clock.day(ts + gap_s)))  # may end or start an entry after midnight
        days: set[str] = set()
        for visitor, day in dirty:
            self._refresh_visitor_day(visitor, day)
            days.add(day)
        days |= self._refresh_loyalty({v for v, _ in dirty})
        days |= self._apply_doors(doors)
        for day in days:
            self._refresh_day(day)
        self._set_state(sightings_id=sightings[-1][0] if sightings else ws, visits_seq=visits[-1][0] if visits else wv,
                        door_rowid=doors[-1][0] if doors else wd)
        more = not visits_done or len(sightings) == limit or len(doors) == limit
        return len(visits) + len(sightings) + len(doors), more

    def _apply_visit(self, row: tuple, dirty: set[tuple[str, str]]) -> None:
        _seq, visit_id, visitor, start, end, last, passerby = row
        new = _visit_row(self.clock, visit_id, visitor, start, end, last, passerby)
        old = self.conn.execute("SELECT visitor, day, passerby FROM an_visit WHERE visit_id = ?",
                                (visit_id,)).fetchone()
        self.conn.execute("INSERT OR REPLACE INTO an_visit VALUES (?, ?, ?, ?, ?, ?)", new)
        dirty.add((new[1], new[2]))
        if old:
            dirty.add((old[0], old[1]))
        if (old[2] if old else 0) != new[3]:  # counted-or-not changed for every sighting of this visit
            for s_visitor, ts in self.conn.execute("SELECT visitor, ts FROM sightings WHERE visit_id = ?",
                                                   (visit_id,)):
                dirty.add((s_visitor, self.clock.day(ts)))
                dirty.add((s_visitor, self.clock.day(ts + self.params.zone_gap_s)))

    def _refresh_visitor_day(self, visitor: str, day: str) -> None:
        start, end = self.clock.bounds(day)
        rows = self.conn.execute(_COUNTED, (visitor, start - self.params.zone_gap_s, end))
        facts = visitor_day_facts(rows, self.clock, self.params.zone_gap_s, {day}).get(day)
        is_passerby = self.conn.execute("SELECT 1 FROM an_visit WHERE visitor = ? AND day = ? AND passerby = 1 "
                                        "LIMIT 1", (visitor, day)).fetchone() is not None
        c = self.conn
        c.execute("DELETE FROM an_visitor_hour WHERE visitor = ? AND day = ?", (visitor, day))
        c.execute("DELETE FROM an_visitor_zone WHERE visitor = ? AND day = ?", (visitor, day))
        if facts is None and not is_passerby:
            c.execute("DELETE FROM an_visitor_day WHERE day = ? AND visitor = ?", (day, visitor))
            return
        if facts is not None:
            c.executemany("INSERT INTO an_visitor_hour VALUES (?, ?, ?)", [(day, h, visitor) for h in facts.hours])
            c.executemany("INSERT INTO an_visitor_zone VALUES (?, ?, ?, ?)",
                          [(day, z, visitor, n) for z, n in facts.zone_entries.items()])
        old = c.execute("SELECT loyalty FROM an_visitor_day WHERE day = ? AND visitor = ?", (day, visitor)).fetchone()
        c.execute("INSERT OR REPLACE INTO an_visitor_day VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  _visitor_day_row(day, visitor, facts, is_passerby, old[0] if old else None))

    def _refresh_loyalty(self, visitors: Iterable[str]) -> set[str]:
        changed: set[str] = set()
        for visitor in visitors:
            rows = self.conn.execute("SELECT day, is_visitor, loyalty FROM an_visitor_day WHERE visitor = ? "
                                     "ORDER BY day", (visitor,)).fetchall()
            for day, new in _loyalty(rows):
                self.conn.execute("UPDATE an_visitor_day SET loyalty = ? WHERE day = ? AND visitor = ?",
                                  (new, day, visitor))
                changed.add(day)
        return changed

    def _apply_doors(self, doors: list[tuple]) -> set[str]:
        counts = _door_counts(self.clock, doors)
        self.conn.executemany(
            "INSERT INTO an_door_hour VALUES (?, ?, ?, ?) ON CONFLICT(day, hour) DO UPDATE SET "
            "door_in = door_in + excluded.door_in, door_out = door_out + excluded.door_out",
            [(d, h, n_in, n_out) for (d, h), (n_in, n_out) in counts.items()])
        return {d for d, _ in counts}

    def _refresh_day(self, day: str) -> None:
        """Re-aggregate one day's small tables from the visitor-level ones (a few ms for 5,000 visitors)."""
        c = self.conn
        for table in ("an_hourly", "an_zone", "an_dwell"):
            c.execute(f"DELETE FROM {table} WHERE day = ?", (day,))
        c.execute("INSERT INTO an_hourly SELECT day, hour, COUNT(*) FROM an_visitor_hour WHERE day = ? "
                  "GROUP BY hour", (day,))
        zones = c.execute("SELECT zone, COUNT(*) FROM an_visitor_zone WHERE day = ? GROUP BY zone", (day,)).fetchall()
        ranked = sorted(zones, key=lambda r: (-r[1], r[0]))
        c.executemany("INSERT INTO an_zone VALUES (?, ?, ?, ?)",
                      [(day, z, n, i) for i, (z, n) in enumerate(ranked, start=1)])
        c.execute("INSERT INTO an_dwell SELECT day, bucket, COUNT(*) FROM an_visit WHERE day = ? AND passerby = 0 "
                  "GROUP BY bucket", (day,))
        people = c.execute(
            "SELECT SUM(is_visitor), SUM(loyalty = 'first_time'), SUM(loyalty = 'returning'), "
            "SUM(loyalty = 'occasional'), SUM(is_passerby AND NOT is_visitor) FROM an_visitor_day WHERE day = ?",
            (day,)).fetchone()
        busiest = c.execute("SELECT hour, visitors FROM an_hourly WHERE day = ? ORDER BY visitors DESC, hour ASC "
                            "LIMIT 1", (day,)).fetchone()
        visits = c.execute("SELECT COUNT(*) FROM an_visit WHERE day = ? AND passerby = 0", (day,)).fetchone()[0]
        door = c.execute("SELECT SUM(door_in), SUM(door_out) FROM an_door_hour WHERE day = ?", (day,)).fetchone()
        values = [int(v or 0) for v in people]
        row = (day, *values[:4], busiest[0] if busiest else None, busiest[1] if busiest else 0, values[4],
               visits, int(door[0] or 0), int(door[1] or 0))
        if any(row[1:5]) or row[7] or row[8] or row[9] or row[10]:
            c.execute("INSERT OR REPLACE INTO an_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        else:
            c.execute("DELETE FROM an_daily WHERE day = ?", (day,))

    # ------------------------------------------------------------------ from scratch
    def recompute(self, progress: Progress | None = None) -> int:
        """Empty every roll-up table and rebuild it from the raw rows, in one transaction."""
        c = self.conn
        begin_rollup(c)
        try:
            n = self._recompute(progress or (lambda _n: None))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        log.info("event=analytics-recompute rows=%d params=%s", n, self.params.key())
        return n

    def _recompute(self, progress: Progress) -> int:
        c = self.conn
        for table in ROLLUP_TABLES:
            c.execute(f"DELETE FROM {table}")
        heads = self.heads()
        visit_rows = [_visit_row(self.clock, *r) for r in c.execute(
            "SELECT visit_id, visitor, start_ts, end_ts, last_seen_ts, passerby FROM visits")]
        c.executemany("INSERT INTO an_visit VALUES (?, ?, ?, ?, ?, ?)", visit_rows)
        passerby_days: dict[str, set[str]] = defaultdict(set)
        for _vid, visitor, day, passerby, _d, _b in visit_rows:
            if passerby:
                passerby_days[visitor].add(day)
        progress(len(visit_rows))
        rows = c.execute("SELECT s.visitor, s.ts, s.zone FROM sightings s LEFT JOIN visits v "
                         "ON v.visit_id = s.visit_id WHERE COALESCE(v.passerby, 0) = 0 ORDER BY s.visitor, s.ts")
        hours: list[tuple] = []
        zones: list[tuple] = []
        days_rows: list[tuple] = []
        count = len(visit_rows)
        for visitor, group in groupby(rows, key=itemgetter(0)):
            items = [(ts, zone) for _v, ts, zone in group]
            count += len(items)
            facts = visitor_day_facts(items, self.clock, self.params.zone_gap_s)
            for day, f in facts.items():
                hours.extend((day, h, visitor) for h in f.hours)
                zones.extend((day, z, visitor, e) for z, e in f.zone_entries.items())
            days_rows.extend(self._visitor_days(visitor, facts, passerby_days.pop(visitor, set())))
            if len(hours) > 50_000:
                self._flush(hours, zones, days_rows)
                progress(count)
        for visitor, pdays in passerby_days.items():  # seen only as passers-by
            days_rows.extend(self._visitor_days(visitor, {}, pdays))
        self._flush(hours, zones, days_rows)
        doors = c.execute("SELECT rowid, ts, direction FROM door_events").fetchall()
        self._apply_doors(doors)
        count += len(doors)
        all_days = {r[0] for r in c.execute("SELECT DISTINCT day FROM an_visitor_day UNION SELECT DISTINCT day "
                                            "FROM an_visit UNION SELECT DISTINCT day FROM an_door_hour")}
        for day in sorted(all_days):
            self._refresh_day(day)
        self._set_state(sightings_id=heads[0], visits_seq=heads[1], door_rowid=heads[2], params=self.params.key())
        progress(count)
        return count

    def _visitor_days(self, visitor: str, facts: dict[str, DayFacts], passerby_days: set[str]) -> list[tuple]:
        days = sorted(set(facts) | passerby_days)
        flags = [(d, 1 if d in facts else 0, None) for d in days]
        loyalty = dict(_loyalty(flags))
        return [_visitor_day_row(d, visitor, facts.get(d), d in passerby_days, loyalty.get(d)) for d in days]

    def _flush(self, hours: list[tuple], zones: list[tuple], days_rows: list[tuple]) -> None:
        self.conn.executemany("INSERT INTO an_visitor_hour VALUES (?, ?, ?)", hours)
        self.conn.executemany("INSERT INTO an_visitor_zone VALUES (?, ?, ?, ?)", zones)
        self.conn.executemany("INSERT INTO an_visitor_day VALUES (?, ?, ?, ?, ?, ?, ?, ?)", days_rows)
        hours.clear()
        zones.clear()
        days_rows.clear()


def _loyalty(rows: Iterable[tuple[str, int, str | None]]) -> list[tuple[str, str | None]]:
    """(day, new class) for each of one visitor's day rows (sorted by day) whose class must change."""
    changes: list[tuple[str, str | None]] = []
    previous: str | None = None
    for day, is_visitor, current in rows:
        new = loyalty_class(day, previous) if is_visitor else None
        if is_visitor:
            previous = day
        if new != current:
            changes.append((day, new))
    return changes


def _door_counts(clock: LocalClock, doors: Iterable[tuple]) -> dict[tuple[str, int], tuple[int, int]]:
    counts: Counter[tuple[str, int, str]] = Counter()
    for _rowid, ts, direction in doors:
        if direction in ("in", "out") and ts is not None:
            day, hour = clock.day_hour(ts)
            counts[(day, hour, direction)] += 1
    keys = {(d, h) for d, h, _ in counts}
    return {(d, h): (counts[(d, h, "in")], counts[(d, h, "out")]) for d, h in keys}


def snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every roll-up table's rows, sorted: what "incremental equals recompute" compares."""
    return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in ROLLUP_TABLES}
