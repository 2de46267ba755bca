"""SQLite storage: the schema, and the single writer that commits batches.

Why one writer: SQLite allows one writer at a time, and a commit waits for the disk, so writes
never run on the event loop (datasette's pattern). The loop hands over :class:`Batch` objects;
the writer merges whatever is queued into one transaction (bigger batches under load, immediate
commits when idle), commits, and only then is each batch's ``on_commit`` callback run — that is
where MQTT messages are acknowledged, so a kill -9 before the commit loses nothing: the broker
redelivers, and ``messages.msg_id`` (PRIMARY KEY, INSERT OR IGNORE) drops what was already
stored. WAL lets HTTP handlers read (in executor threads) while the writer writes.

The writer is a child process (:mod:`aggregator.sqlite_writer`, why there); here a sender thread
hands it batches and a receiver thread runs the callbacks of what it committed. If the child dies,
the batches it had not confirmed are sent again to a new one (the primary keys make a repeat
harmless).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from aggregator.child_process import read_frame, spawn, write_frame
from aggregator.sqlite_writer import TABLES, connect, delete_expired

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
-- The offers' tables (aggregator.offers.persist reads them; the writer writes them like the rest).
CREATE TABLE IF NOT EXISTS offer_state (shopper TEXT PRIMARY KEY, snapshot TEXT NOT NULL, updated_ts REAL);
CREATE TABLE IF NOT EXISTS offers (id INTEGER PRIMARY KEY, ts REAL NOT NULL, shopper TEXT NOT NULL,
    customer_id TEXT, rule TEXT NOT NULL, offer TEXT NOT NULL, department TEXT, coupon_id INTEGER,
    prediction TEXT);
CREATE INDEX IF NOT EXISTS offers_ts ON offers (ts);
CREATE INDEX IF NOT EXISTS offers_customer ON offers (customer_id, ts);
CREATE TABLE IF NOT EXISTS offer_log (id INTEGER PRIMARY KEY, ts REAL NOT NULL, line TEXT NOT NULL);
"""

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
    offer_state: list[tuple[Any, ...]] = field(default_factory=list)  # (shopper, snapshot JSON or None, ts)
    offers: list[tuple[Any, ...]] = field(default_factory=list)
    offer_log: list[tuple[Any, ...]] = field(default_factory=list)
    offer_log_keep: list[tuple[Any, ...]] = field(default_factory=list)  # (rows to keep,): trims offer_log
    on_commit: list[Callable[[], None]] = field(default_factory=list)

    def rows(self) -> int:
        return sum(len(getattr(self, name)) for name in TABLES)

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """The rows by table, as the writer process takes them (visits: the latest row of each)."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        for name in TABLES:
            rows = getattr(self, name)
            if rows:
                out[name] = list(rows.values()) if name == "visits" else rows
        return out


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
    """Owns the database file: schema at open, the writer process, batched commits, retention."""

    def __init__(self, path: Path | str, *, retention_days: float = 30.0, max_rows: int = 5000,
                 retention_interval_s: float = 3600.0) -> None:
        self.path = Path(path)
        self.retention_s = retention_days * 86400.0
        self.retention_interval_s = retention_interval_s
        self.max_rows = max_rows
        self.stats = StoreStats()
        self.writable = False
        # batches, retention requests and the final None, in the order the writer must see them
        self._outbox: queue.SimpleQueue[Batch | tuple[Any, ...] | None] = queue.SimpleQueue()
        self._unconfirmed: dict[int, Batch] = {}  # sent to the writer, not yet committed (resent on a restart)
        self._lock = threading.Lock()  # _unconfirmed and the child's stdin
        self._seq = 0
        self._submitted = 0  # written by the submitting thread only
        self._taken = 0  # written by the receiver thread only
        self._child: subprocess.Popen[bytes] | None = None
        self._sender: threading.Thread | None = None
        self._receiver: threading.Thread | None = None
        self._closing = False
        self._closed = threading.Event()
        self._retention_reply: dict[int, int] = {}
        self._retention_done = threading.Condition()

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Create the schema and start the writer (blocking; call from a thread or at start-up)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_schema(self.path)
        self._closing = False
        self._closed.clear()
        self._start_child()
        self.writable = True
        self._sender = threading.Thread(target=self._send_loop, name="sqlite-sender", daemon=True)
        self._sender.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Commit everything queued, then stop the writer."""
        if self._sender is not None:
            self._outbox.put(None)
            self._sender.join(timeout_s)
            self._sender = None
        if self._child is not None:
            self._closed.wait(timeout_s)
            child = self._child
            try:
                child.wait(timeout=max(1.0, timeout_s / 3))
            except subprocess.TimeoutExpired:
                log.error("event=writer-stuck action=kill")
                child.kill()
                child.wait()
            for stream in (child.stdin, child.stdout):
                if stream is not None:
                    stream.close()
            if self._receiver is not None:
                self._receiver.join(5)
            self._child = None
        self.writable = False

    @property
    def writer_pid(self) -> int | None:
        """The writer process (for benchmarks and operators: it shows in ps as aggregator.sqlite_writer)."""
        return self._child.pid if self._child is not None else None

    @property
    def queue_depth(self) -> int:
        """Batches handed over and not yet committed."""
        return self._submitted - self._taken

    def submit(self, batch: Batch) -> None:
        """Queue a batch for the writer (thread-safe, never blocks)."""
        self._submitted += 1
        self._outbox.put(batch)

    def run_retention(self, now: float, timeout_s: float = 60.0) -> int:
        """Delete raw rows older than the retention period; returns how many (blocks until done)."""
        if self.retention_s <= 0:
            return 0
        if self._child is None:
            conn = connect(str(self.path))
            try:
                return delete_expired(conn, now - self.retention_s)
            finally:
                conn.close()
        with self._lock:
            self._seq += 1
            req = self._seq
        self._outbox.put(("retention", req, now))  # after the batches submitted before this call
        with self._retention_done:
            if not self._retention_done.wait_for(lambda: req in self._retention_reply, timeout_s):
                raise TimeoutError(f"retention did not finish in {timeout_s} s")
            return self._retention_reply.pop(req)

    # ------------------------------------------------------------------ the child

    def _start_child(self) -> None:
        self._child = spawn("aggregator.sqlite_writer", str(self.path), repr(self.retention_s),
                            repr(self.retention_interval_s), str(self.max_rows))
        self._receiver = threading.Thread(target=self._receive_loop, args=(self._child,), name="sqlite-receiver",
                                          daemon=True)
        self._receiver.start()

    def _write(self, frame: tuple[Any, ...]) -> None:
        child = self._child
        assert child is not None and child.stdin is not None
        write_frame(child.stdin, frame)  # type: ignore[arg-type]

    def _send_loop(self) -> None:
        while True:
            batch = self._outbox.get()
            with self._lock:
                if batch is None:
                    self._closing = True
                    self._safe_write(("close",))
                    return
                if isinstance(batch, tuple):  # a retention request
                    self._safe_write(batch)
                    continue
                self._seq += 1
                self._unconfirmed[self._seq] = batch
                self._safe_write(("batch", self._seq, batch.tables()))

    def _safe_write(self, frame: tuple[Any, ...]) -> None:
        try:
            self._write(frame)
        except (BrokenPipeError, OSError, ValueError):
            pass  # the child died: the receiver restarts it and resends what is unconfirmed

    def _receive_loop(self, child: subprocess.Popen[bytes]) -> None:
        stream = child.stdout
        assert stream is not None
        while True:
            try:
                frame = read_frame(stream)  # type: ignore[arg-type]
            except (OSError, ValueError, EOFError):
                frame = None
            if frame is None:
                break
            kind = frame[0]
            if kind == "committed":
                self._committed(frame[1], frame[2])
            elif kind == "failing":
                self.writable = False
                self.stats.errors += 1
            elif kind == "retention":
                if frame[1] is None:
                    self.stats.retention_deleted += frame[2]
                else:
                    with self._retention_done:
                        self.stats.retention_deleted += frame[2]
                        self._retention_reply[frame[1]] = frame[2]
                        self._retention_done.notify_all()
            elif kind == "closed":
                self._closed.set()
                return
        if self._closing:
            self._closed.set()
            return
        self._restart(child)

    def _restart(self, dead: subprocess.Popen[bytes]) -> None:
        """The writer died unasked: start another and send it every batch not yet confirmed."""
        code = dead.wait()
        for stream in (dead.stdin, dead.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass  # a write the dead child never read
        self.writable = False
        self.stats.errors += 1
        log.error("event=writer-died code=%s action=restart unconfirmed=%d", code, len(self._unconfirmed))
        time.sleep(0.5)
        with self._lock:
            self._start_child()
            for seq, batch in sorted(self._unconfirmed.items()):
                self._safe_write(("batch", seq, batch.tables()))
            if self._closing:
                self._safe_write(("close",))

    def _committed(self, seqs: list[int], info: dict[str, Any]) -> None:
        # no lock: dict.pop is atomic, and the sender may be holding it through a long write
        batches = [b for b in (self._unconfirmed.pop(seq, None) for seq in seqs) if b is not None]
        self.writable = True
        st = self.stats
        elapsed = info["seconds"]
        st.commits += 1
        st.rows += info["rows"]
        st.duplicates += info["duplicates"]
        st.last_commit_s = elapsed
        st.commit_seconds_sum += elapsed
        st.commit_seconds_max = max(st.commit_seconds_max, elapsed)
        st.last_commit_wall = time.time()
        for batch in batches:
            for callback in batch.on_commit:
                try:
                    callback()
                except Exception:  # an ack failing (broker gone) must not stop the receiver
                    log.exception("event=on-commit-callback-failed")
        self._taken += len(batches)


def read_query(path: Path | str, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """Run a read-only query on a fresh connection (call from an executor thread, not the loop)."""
    conn = connect(path, readonly=True)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, tuple(params))]
    finally:
        conn.close()
