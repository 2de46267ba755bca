"""A bounded, on-disk queue of messages the broker has not acknowledged yet.

A store's uplink drops for minutes to hours; the agent keeps sensing. Messages wait here, in a
SQLite file (WAL: a crash mid-write loses nothing committed), ordered by their sequence number so
a replay after reconnect delivers them in the order they were made. It is bounded: when full, the
oldest are dropped and counted (``dropped``), because fresh data is worth more than old data to a
live map, and a full disk would stop the agent altogether. Payloads hold hashed ids only.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Spool:
    """``append`` / ``peek`` / ``remove`` of ``(seq, topic, payload)`` rows; thread-safe."""

    def __init__(self, path: str | os.PathLike[str], *, max_messages: int = 200_000) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._depth = self._db.execute("SELECT count(*) FROM spool").fetchone()[0]
            row = self._db.execute("SELECT value FROM meta WHERE key='dropped'").fetchone()
            self.dropped = int(row[0]) if row else 0
        except sqlite3.Error:
            self._db.close()
            raise

    @property
    def depth(self) -> int:
        return self._depth

    def append(self, seq: int, topic: str, payload: bytes) -> None:
        self.append_many([(seq, topic, payload)])

    def append_many(self, rows: list[tuple[int, str, bytes]]) -> None:
        """Store rows durably (one transaction), then drop the oldest beyond ``max_messages``."""
        if not rows:
            return
        with self._lock:
            with self._db:
                self._db.execute("BEGIN")
                cur = self._db.executemany("INSERT OR IGNORE INTO spool(seq, topic, payload) VALUES (?, ?, ?)", rows)
                self._depth += cur.rowcount
                excess = self._depth - self.max_messages
                if excess > 0:
                    cur = self._db.execute(
                        "DELETE FROM spool WHERE seq IN (SELECT seq FROM spool ORDER BY seq LIMIT ?)", (excess,))
                    self._depth -= cur.rowcount
                    self.dropped += cur.rowcount
                    self._db.execute("INSERT INTO meta(key, value) VALUES ('dropped', ?) "
                                     "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (self.dropped,))
                    log.warning("event=spool-full dropped=%d total_dropped=%d max=%d",
                                cur.rowcount, self.dropped, self.max_messages)

    def peek(self, limit: int = 500) -> list[tuple[int, str, bytes]]:
        """The oldest ``limit`` rows, in order, without removing them."""
        with self._lock:
            return self._db.execute("SELECT seq, topic, payload FROM spool ORDER BY seq LIMIT ?", (limit,)).fetchall()

    def remove(self, seqs: list[int]) -> None:
        """Forget rows the broker has acknowledged."""
        if not seqs:
            return
        with self._lock:
            with self._db:
                self._db.execute("BEGIN")
                cur = self._db.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in seqs])
                self._depth -= cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
