"""Closed visits as chain rows: what a store ships, computed from its own tables.

Two kinds of row (schema in docs/DATA.md, "Chain shipping"):
- a *visit*: one per closed visit, partitioned by the local hour it started;
- a *zone visit*: one per visit, person, local hour and zone (``null``: in the store but in no
  zone) in which the visit's sightings fell, with the first and last sighting and their count.
  Only visits that are not passers-by have them: those are the sightings /api/stats counts, so
  the chain job finds the same daily visitors, busiest hour and zone visitors as the store.
Ids are re-keyed with the chain key (:func:`aggregator.chain.layout.chain_id`); a person is the
store's visitor (its loyalty customer id, else its hashed device id) under that key.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aggregator.analytics.definitions import LocalClock
from aggregator.chain.layout import chain_id

Row = dict[str, Any]
Partitions = dict[tuple[str, int], list[Row]]  # (local date, local hour) -> rows in shipping order
_IDS_PER_QUERY = 500  # below SQLite's default 999 bound variables
_ID_CACHE = 50_000  # re-keyed ids kept (a few MB); cleared when full


@dataclass
class Batch:
    visits: Partitions = field(default_factory=lambda: defaultdict(list))
    zone_visits: Partitions = field(default_factory=lambda: defaultdict(list))


class ChainRows:
    """Reads one store's closed visits in seq order and shapes them as chain rows."""

    def __init__(self, store_id: str, timezone: str, key: bytes) -> None:
        self.store_id = store_id
        self.clock = LocalClock(timezone)
        self.key = key
        self._ids: dict[str, str] = {}  # re-keyed ids: a visit's zone visits and a person's visits share them

    def batch_end(self, conn: sqlite3.Connection, after_seq: int, limit: int) -> int | None:
        """The seq of the ``limit``-th visit closed after ``after_seq`` (or of the last one); None if none."""
        row = conn.execute("SELECT seq FROM visits WHERE seq > ? AND end_ts IS NOT NULL ORDER BY seq "
                           "LIMIT 1 OFFSET ?", (after_seq, limit - 1)).fetchone()
        if row is None:
            row = conn.execute("SELECT MAX(seq) FROM visits WHERE seq > ? AND end_ts IS NOT NULL",
                               (after_seq,)).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def read(self, conn: sqlite3.Connection, after_seq: int, last_seq: int) -> Batch:
        """Visits closed with ``after_seq < seq <= last_seq`` and their zone visits, in seq order."""
        visits = conn.execute("SELECT visit_id, visitor, customer_id, start_ts, end_ts, last_seen_ts, passerby, seq "
                              "FROM visits WHERE seq > ? AND seq <= ? AND end_ts IS NOT NULL ORDER BY seq",
                              (after_seq, last_seq)).fetchall()

        def sightings_of(visit_ids: list[str]) -> Iterable[tuple]:
            marks = ",".join("?" * len(visit_ids))
            return conn.execute(f"SELECT visit_id, visitor, ts, zone FROM sightings WHERE visit_id IN ({marks})",
                                visit_ids)

        return self.shape(visits, sightings_of)

    def shape(self, visits: Iterable[tuple], sightings_of: Callable[[list[str]], Iterable[tuple]]) -> Batch:
        """Chain rows for ``visits`` (closed, in seq order: ``(visit_id, visitor, customer_id, start_ts,
        end_ts, last_seen_ts, passerby, seq)``); ``sightings_of(visit_ids)`` gives those visits' sightings
        as ``(visit_id, visitor, ts, zone)``. :meth:`read` feeds it from the store database, the chain
        generator straight from the generated rows: the same code shapes both."""
        batch = Batch()
        counted: list[str] = []
        for visit_id, visitor, customer, start, end, last, passerby, seq in visits:
            row, key = self._visit(visit_id, visitor, customer, start, end, last, passerby, seq)
            batch.visits[key].append(row)
            if not passerby:
                counted.append(visit_id)
        for i in range(0, len(counted), _IDS_PER_QUERY):
            chunk = counted[i:i + _IDS_PER_QUERY]
            self._zone_visits(chunk, sightings_of(chunk), batch.zone_visits)
        return batch

    def _id(self, value: str) -> str:
        cached = self._ids.get(value)
        if cached is None:
            if len(self._ids) >= _ID_CACHE:
                self._ids.clear()
            cached = self._ids[value] = chain_id(self.key, value)
        return cached

    def _visit(self, visit_id: str, visitor: str, customer: str | None, start: float | None, end: float,
               last: float | None, passerby: int, seq: int) -> tuple[Row, tuple[str, int]]:
        # The same start, stop and duration as the store's roll-up (aggregator.analytics.rollup._visit_row).
        start_ts = start if start is not None else (last or 0.0)
        duration_s = max(0.0, end - start_ts)
        day, hour = self.clock.day_hour(start_ts)
        row = {"store": self.store_id, "visit": self._id(f"{self.store_id}/{visit_id}"),
               "person": self._id(visitor), "customer": customer is not None,
               "start_ms": round(start_ts * 1000), "end_ms": round(end * 1000),
               "duration_s": round(duration_s, 3), "passerby": bool(passerby), "date": day, "hour": hour,
               "seq": seq}
        return row, (day, hour)

    def _zone_visits(self, visit_ids: list[str], sightings: Iterable[tuple], out: Partitions) -> None:
        groups: dict[tuple, list[float]] = {}
        order = {v: i for i, v in enumerate(visit_ids)}
        for visit_id, visitor, ts, zone in sightings:
            day, hour = self.clock.day_hour(ts)
            key = (order[visit_id], visit_id, visitor, day, hour, zone or "")
            g = groups.get(key)
            if g is None:
                groups[key] = [ts, ts, 1]
            else:
                g[0], g[1], g[2] = min(g[0], ts), max(g[1], ts), g[2] + 1
        for (_i, visit_id, visitor, day, hour, zone), (first, last, n) in sorted(groups.items(),
                                                                               key=lambda kv: (kv[0][0], kv[1][0])):
            out[(day, hour)].append({
                "store": self.store_id, "visit": self._id(f"{self.store_id}/{visit_id}"),
                "person": self._id(visitor), "zone": zone or None, "date": day, "hour": hour,
                "first_ms": round(first * 1000), "last_ms": round(last * 1000), "sightings": int(n)})
