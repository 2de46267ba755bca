"""SQLite persistence for offers: sequences in progress, fired offers, the transition log.

Three tables of our own in the aggregator's database (WAL, shared with the core):
- ``offer_state(shopper, snapshot, updated_ts)``: one JSON snapshot per shopper with something in
  progress, so a restart resumes sequences (written from :meth:`OfferEngine.take_changes`);
- ``offers(id, ts, shopper, customer_id, rule, offer, department, coupon_id, prediction)``;
- ``offer_log(id, ts, line)``: seed-001-style lines, trimmed to the newest ``max_log_rows``.
Synchronous: the aiohttp layer calls it from one worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from aggregator.store import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS offer_state (shopper TEXT PRIMARY KEY, snapshot TEXT NOT NULL, updated_ts REAL);
CREATE TABLE IF NOT EXISTS offers (id INTEGER PRIMARY KEY, ts REAL NOT NULL, shopper TEXT NOT NULL,
    customer_id TEXT, rule TEXT NOT NULL, offer TEXT NOT NULL, department TEXT, coupon_id INTEGER,
    prediction TEXT);
CREATE INDEX IF NOT EXISTS offers_ts ON offers (ts);
CREATE INDEX IF NOT EXISTS offers_customer ON offers (customer_id, ts);
CREATE TABLE IF NOT EXISTS offer_log (id INTEGER PRIMARY KEY, ts REAL NOT NULL, line TEXT NOT NULL);
"""


class OfferStore:
    def __init__(self, path: Path | str, *, max_log_rows: int = 10_000) -> None:
        self.path = Path(path)
        self.max_log_rows = max_log_rows
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection = connect(self.path)
        self._conn.row_factory = sqlite3.Row
        with self._conn:
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def load_states(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute("SELECT shopper, snapshot FROM offer_state").fetchall()
        return [(r["shopper"], json.loads(r["snapshot"])) for r in rows]

    def write(self, *, states: list[tuple[str, dict[str, Any] | None]], offers: list[dict[str, Any]],
              log_lines: list[tuple[float, str]], now_ts: float) -> None:
        """One transaction for everything one batch of events produced."""
        with self._lock, self._conn:
            c = self._conn
            c.executemany("DELETE FROM offer_state WHERE shopper = ?", [(u,) for u, s in states if s is None])
            c.executemany("INSERT OR REPLACE INTO offer_state VALUES (?, ?, ?)",
                          [(u, json.dumps(s, separators=(",", ":")), now_ts) for u, s in states if s is not None])
            c.executemany("INSERT INTO offers (ts, shopper, customer_id, rule, offer, department, coupon_id,"
                          " prediction) VALUES (:ts, :shopper, :customer_id, :rule, :offer, :department,"
                          " :coupon_id, :prediction)",
                          [{**o, "prediction": json.dumps(o["prediction"]) if o.get("prediction") else None}
                           for o in offers])
            if log_lines:
                c.executemany("INSERT INTO offer_log (ts, line) VALUES (?, ?)", log_lines)
                c.execute("DELETE FROM offer_log WHERE id <= (SELECT MAX(id) FROM offer_log) - ?",
                          (self.max_log_rows,))

    def offers(self, *, limit: int = 100, customer_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM offers"
        params: list[Any] = []
        if customer_id is not None:
            sql += " WHERE customer_id = ?"
            params.append(customer_id)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = [dict(r) for r in self._conn.execute(sql, params)]
        for r in rows:
            r["prediction"] = json.loads(r["prediction"]) if r["prediction"] else None
        return rows

    def log(self, *, limit: int = 200) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(
                "SELECT id, ts, line FROM offer_log ORDER BY id DESC LIMIT ?", (limit,))]
