"""Writing core-table rows the way ingest does, for tests: visits get a fresh global seq on every write."""

from __future__ import annotations

import sqlite3


class Writer:
    """Inserts sightings/visits/door events into the core tables, one commit per call."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        row = conn.execute("SELECT MAX(seq) FROM visits").fetchone()
        self.seq = int(row[0] or 0)

    def visit(self, visit_id: str, visitor: str, start_ts: float, end_ts: float | None = None, *,
              passerby: int = 0, last_seen_ts: float | None = None) -> None:
        self.seq += 1
        self.conn.execute("INSERT OR REPLACE INTO visits VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?)",
                          (visit_id, visitor, "dev-" + visitor, start_ts, end_ts,
                           last_seen_ts if last_seen_ts is not None else (end_ts or start_ts), passerby, self.seq))

    def sighting(self, ts: float, visitor: str, zone: str | None, visit_id: str | None = None) -> None:
        self.conn.execute("INSERT INTO sightings(ts, visitor, device, visit_id, x, y, accuracy_m, zone) "
                          "VALUES (?, ?, ?, ?, 1.0, 2.0, 1.5, ?)", (ts, visitor, "dev-" + visitor, visit_id, zone))

    def door(self, msg_id: str, ts: float, direction: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO door_events VALUES (?, ?, 'agent-1', 'door', ?)",
                          (msg_id, ts, direction))


def one_shopper(conn: sqlite3.Connection, n: int, day_start: float) -> None:
    """Visitor ``v{n}``: a 10-minute visit an hour after ``day_start``, seen once in Sport."""
    w = Writer(conn)
    w.visit(f"visit-{n}", f"v{n}", day_start + 3600 + n, day_start + 4200 + n)
    w.sighting(day_start + 3660 + n, f"v{n}", "Sport", f"visit-{n}")
