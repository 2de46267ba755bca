"""SQLite storage: the schema, and the single writer thread that commits batches.

Why one writer thread: SQLite allows one writer at a time, and a commit waits for the disk, so
writes never run on the event loop (datasette's pattern). The loop hands over :class:`Batch`
objects; the writer merges whatever is queued into one transaction (bigger batches under load,
immediate commits when idle), commits, and only then runs each batch's ``on_commit`` callback —
that is where MQTT messages are acknowledged, so a kill -9 before the commit loses nothing: the
broker redelivers, and ``messages.msg_id`` (PRIMARY KEY, INSERT OR IGNORE) drops what was already
stored. WAL lets HTTP handlers read (in executor threads) while the writer writes.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    msg_id TEXT PRIMARY KEY, agent TEXT, kind TEXT, ts REAL, device TEXT, payload TEXT);
CREATE INDEX IF NOT EXISTS messages_ts ON messages(ts);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY, received_ts REAL, topic TEXT, reason TEXT, detail TEXT, payload BLOB);
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters(received_ts);
CREATE TABLE IF NOT EXISTS visits (
    visit_id TEXT PRIMARY KEY, visitor TEXT, device TEXT, customer_id TEXT, start_ts REAL,
    end_ts REAL NULL, last_seen_ts REAL, passerby INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS visits_seq ON visits(seq);
CREATE INDEX IF NOT EXISTS visits_start ON visits(start_ts);
CREATE INDEX IF NOT EXISTS visits_visitor ON visits(visitor, start_ts);
CREATE INDEX IF NOT EXISTS visits_open ON visits(end_ts) WHERE end_ts IS NULL;
CREATE TABLE IF NOT EXISTS sightings (
    id INTEGER PRIMARY KEY, ts REAL, visitor TEXT, device TEXT, visit_id TEXT, x REAL, y REAL,
    accuracy_m REAL, zone TEXT NULL);
CREATE INDEX IF NOT EXISTS sightings_ts ON sightings(ts);
CREATE INDEX IF NOT EXISTS sightings_visitor_ts ON sightings(visitor, ts);
CREATE TABLE IF NOT EXISTS door_events (
    msg_id TEXT PRIMARY KEY, ts REAL, agent TEXT, sensor TEXT, direction TEXT);
CREATE INDEX IF NOT EXISTS door_events_ts ON door_events(ts);
CREATE TABLE IF NOT EXISTS motion_events (
    msg_id TEXT PRIMARY KEY, ts REAL, agent TEXT, sensor TEXT, zone TEXT, active INTEGER);
CREATE INDEX IF NOT EXISTS motion_events_ts ON motion_events(ts);
CREATE TABLE IF NOT EXISTS links (device TEXT PRIMARY KEY, customer_id TEXT, ts REAL);
CREATE INDEX IF NOT EXISTS links_customer ON links(customer_id);
CREATE TABLE IF NOT EXISTS customer_events (
    id INTEGER PRIMARY KEY, ts REAL, kind TEXT, visitor TEXT, x INTEGER, y INTEGER, dep TEXT);
CREATE INDEX IF NOT EXISTS customer_events_ts ON customer_events(ts);
CREATE INDEX IF NOT EXISTS customer_events_visitor ON customer_events(visitor, id);
"""

# Raw, high-volume tables trimmed by retention (visits, links and door counts are kept).
RETENTION_TABLES = (("messages", "ts"), ("sightings", "ts"), ("dead_letters", "received_ts"),
                    ("customer_events", "ts"), ("motion_events", "ts"))


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the pragmas every Floorwalker connection uses (WAL, busy timeout)."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def create_schema(path: Path | str) -> None:
    """Create the core tables and indexes if missing (idempotent); turns on WAL."""
    db = sqlite_utils.Database(str(path))
    try:
        db.enable_wal()
        db.executescript(SCHEMA)
    finally:
        db.close()


@dataclass(slots=True)
class Batch:
    """Rows produced by ingest for one slice of messages, committed atomically with their acks."""

    messages: list[tuple[Any, ...]] = field(default_factory=list)
    dead_letters: list[tuple[Any, ...]] = field(default_factory=list)
    visits: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # visit_id -> full row (upsert)
    sightings: list[tuple[Any, ...]] = field(default_factory=list)
    door_events: list[tuple[Any, ...]] = field(default_factory=list)
    motion_events: list[tuple[Any, ...]] = field(default_factory=list)
    links: list[tuple[Any, ...]] = field(default_factory=list)
    customer_events: list[tuple[Any, ...]] = field(default_factory=list)
    on_commit: list[Callable[[], None]] = field(default_factory=list)

    def rows(self) -> int:
        return (len(self.messages) + len(self.dead_letters) + len(self.visits) + len(self.sightings)
                + len(self.door_events) + len(self.motion_events) + len(self.links) + len(self.customer_events))

    def merge(self, other: Batch) -> None:
        self.messages += other.messages
        self.dead_letters += other.dead_letters
        self.visits.update(other.visits)
        self.sightings += other.sightings
        self.door_events += other.door_events
        self.motion_events += other.motion_events
        self.links += other.links
        self.customer_events += other.customer_events
        self.on_commit += other.on_commit


_SQL = (
    ("messages", "INSERT OR IGNORE INTO messages(msg_id, agent, kind, ts, device, payload) VALUES (?,?,?,?,?,?)"),
    ("dead_letters", "INSERT INTO dead_letters(received_ts, topic, reason, detail, payload) VALUES (?,?,?,?,?)"),
    ("sightings", "INSERT INTO sightings(ts, visitor, device, visit_id, x, y, accuracy_m, zone) "
                  "VALUES (?,?,?,?,?,?,?,?)"),
    ("door_events", "INSERT OR IGNORE INTO door_events(msg_id, ts, agent, sensor, direction) VALUES (?,?,?,?,?)"),
    ("motion_events", "INSERT OR IGNORE INTO motion_events(msg_id, ts, agent, sensor, zone, active) "
                      "VALUES (?,?,?,?,?,?)"),
    ("links", "INSERT INTO links(device, customer_id, ts) VALUES (?,?,?) ON CONFLICT(device) DO UPDATE SET "
              "customer_id = excluded.customer_id, ts = excluded.ts"),
    ("customer_events", "INSERT INTO customer_events(ts, kind, visitor, x, y, dep) VALUES (?,?,?,?,?,?)"),
)
_VISIT_SQL = (
    "INSERT INTO visits(visit_id, visitor, device, customer_id, start_ts, end_ts, last_seen_ts, passerby, seq) "
    "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(visit_id) DO UPDATE SET visitor = excluded.visitor, "
    "customer_id = excluded.customer_id, end_ts = excluded.end_ts, last_seen_ts = excluded.last_seen_ts, "
    "passerby = excluded.passerby, seq = excluded.seq")


@dataclass
class StoreStats:
    commits: int = 0
    rows: int = 0
    duplicates: int = 0  # message rows the database already had (redelivery after a restart)
    last_commit_s: float = 0.0
    commit_seconds_sum: float = 0.0
    commit_seconds_max: float = 0.0
    errors: int = 0
    retention_deleted: int = 0
    last_commit_wall: float = 0.0


class Store:
    """Owns the database file: schema at open, one writer thread, batched commits, retention."""

    def __init__(self, path: Path | str, *, retention_days: float = 30.0, max_rows: int = 5000,
                 retention_interval_s: float = 3600.0) -> None:
        self.path = Path(path)
        self.retention_s = retention_days * 86400.0
        self.retention_interval_s = retention_interval_s
        self.max_rows = max_rows
        self.stats = StoreStats()
        self.writable = False
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._submitted = 0  # written by the submitting thread only
        self._taken = 0  # written by the writer thread only
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._next_retention = 0.0

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Create the schema and start the writer (blocking; call from a thread or at start-up)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_schema(self.path)
        self._conn = connect(self.path)
        self.writable = True
        self._next_retention = time.monotonic() + 5.0
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Commit everything queued, then stop the writer and close the connection."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.writable = False

    @property
    def queue_depth(self) -> int:
        """Batches handed over and not yet committed."""
        return self._submitted - self._taken

    def submit(self, batch: Batch) -> None:
        """Queue a batch for the writer (thread-safe, never blocks)."""
        self._submitted += 1
        self._queue.put(batch)

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                self._maybe_retention()
                continue
            if first is None:
                break
            batch, taken = first, 1
            while batch.rows() < self.max_rows:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.merge(more)
                taken += 1
            self._commit(batch)
            self._taken += taken
            self._maybe_retention()

    def _commit(self, batch: Batch) -> None:
        conn = self._conn
        assert conn is not None
        started = time.perf_counter()
        while True:
            try:
                with conn:
                    for name, sql in _SQL:
                        rows = getattr(batch, name)
                        if rows:
                            cur = conn.executemany(sql, rows)
                            if name == "messages":
                                self.stats.duplicates += len(rows) - max(cur.rowcount, 0)
                    if batch.visits:
                        conn.executemany(_VISIT_SQL, batch.visits.values())
                self.writable = True
                break
            except sqlite3.Error as exc:  # disk full, locked for too long: keep the batch, retry
                self.writable = False
                self.stats.errors += 1
                log.error("event=commit-failed error=%r rows=%d retry_in_s=1", exc, batch.rows())
                time.sleep(1.0)
        elapsed = time.perf_counter() - started
        st = self.stats
        st.commits += 1
        st.rows += batch.rows()
        st.last_commit_s = elapsed
        st.commit_seconds_sum += elapsed
        st.commit_seconds_max = max(st.commit_seconds_max, elapsed)
        st.last_commit_wall = time.time()
        for callback in batch.on_commit:
            try:
                callback()
            except Exception:  # an ack failing (broker gone) must not stop the writer
                log.exception("event=on-commit-callback-failed")

    def _maybe_retention(self) -> None:
        if self.retention_s <= 0 or time.monotonic() < self._next_retention:
            return
        self._next_retention = time.monotonic() + self.retention_interval_s
        self.run_retention(time.time())

    def run_retention(self, now: float) -> int:
        """Delete raw rows older than the retention period (writer thread, or before start)."""
        conn = self._conn
        if conn is None or self.retention_s <= 0:
            return 0
        cutoff = now - self.retention_s
        deleted = 0
        try:
            with conn:
                for table, column in RETENTION_TABLES:
                    deleted += conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (cutoff,)).rowcount
        except sqlite3.Error as exc:
            log.error("event=retention-failed error=%r", exc)
            return 0
        self.stats.retention_deleted += deleted
        if deleted:
            log.info("event=retention deleted=%d cutoff_ts=%.0f", deleted, cutoff)
        return deleted


def read_query(path: Path | str, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """Run a read-only query on a fresh connection (call from an executor thread, not the loop)."""
    conn = connect(path, readonly=True)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, tuple(params))]
    finally:
        conn.close()
