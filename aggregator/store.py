"""SQLite storage: the schema, and the single writer that commits batches.

Why one writer: SQLite allows one writer at a time, and a commit waits for the disk, so writes
never run on the event loop (datasette's pattern). The loop hands over :class:`Batch` objects;
the writer process (:mod:`aggregator.sqlite_writer`, why a process there) merges whatever is queued
into one transaction (bigger batches under load, immediate commits when idle) and commits. Only
then are the batch's MQTT messages acknowledged: the writer sends the acknowledgements straight to
the MQTT process (``Batch.acks``), and tells this side it committed, which runs each batch's
``on_commit`` callbacks (figures, offers waiting for their rows). A kill -9 before the commit loses
nothing: the broker redelivers, and ``messages.msg_id`` (PRIMARY KEY, INSERT OR IGNORE) drops what
was already stored. WAL lets HTTP handlers read (in executor threads) while the writer writes.

The writer is a :class:`~aggregator.child_process.Worker` on an event loop: the aggregator's own
(:meth:`Store.start`), or a loop on a thread of the store's own for a program with none
(:meth:`Store.open`). If the child dies, the batches it had not confirmed are sent again to a new
one (the primary keys make a repeat harmless).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from aggregator.child_process import PIPE_BYTES, Worker
from aggregator.sqlite_writer import TABLES, connect

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
    acks: list[tuple[int, int]] = field(default_factory=list)  # (mid, qos): the writer acknowledges them after COMMIT
    on_commit: list[Callable[[], None]] = field(default_factory=list)  # run here, on the loop, after COMMIT

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
    """Owns the database file: schema at open, the writer process, batched commits.

    Retention runs in the writer, when it starts and every ``retention_interval_s``.

    ``submit`` may be called from any thread; everything else of the writer's happens on its loop."""

    def __init__(self, path: Path | str, *, retention_days: float = 30.0, max_rows: int = 5000,
                 retention_interval_s: float = 3600.0) -> None:
        self.path = Path(path)
        self.retention_s = retention_days * 86400.0
        self.retention_interval_s = retention_interval_s
        self.max_rows = max_rows
        self.stats = StoreStats()
        self.writable = False
        self.acks_to: str | None = None  # the MQTT process's acknowledgement socket, if there is one
        self._unconfirmed: dict[int, Batch] = {}  # sent to the writer, not yet committed (resent on a restart)
        self._seq = 0
        self._drained: asyncio.Event | None = None
        self._worker: Worker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._own_loop: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the schema (in an executor thread) and start the writer on the running loop."""
        loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await loop.run_in_executor(None, create_schema, self.path)
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._drained = asyncio.Event()
        self._drained.set()
        self._worker = Worker("aggregator.sqlite_writer", str(self.path), repr(self.retention_s),
                              repr(self.retention_interval_s), str(self.max_rows),
                              on_frame=self._frame, on_start=self._resend, on_exit=self._died,
                              pipe_bytes=PIPE_BYTES)
        await self._worker.start()
        self.writable = True

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Commit everything submitted (through a writer restart if need be), then stop the writer."""
        worker = self._worker
        if worker is None:
            return
        assert self._drained is not None
        await asyncio.sleep(0)  # batches handed over from other threads just now
        try:
            await asyncio.wait_for(self._drained.wait(), timeout_s)
        except TimeoutError:
            log.error("event=writer-stuck unconfirmed=%d action=stop", len(self._unconfirmed))
        await worker.stop(max(1.0, timeout_s / 3))
        self._worker = None
        self.writable = False

    def open(self) -> None:
        """:meth:`start` for a program without an event loop: the writer runs on a loop of its own."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="sqlite-writer-loop", daemon=True)
        thread.start()
        self._own_loop = thread
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result()
        except BaseException:
            self._end_own_loop(loop)
            raise

    def close(self, timeout_s: float = 30.0) -> None:
        """:meth:`stop` from any thread but the loop's (blocking)."""
        loop = self._loop
        if loop is None or self._worker is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(timeout_s), loop).result()
        if self._own_loop is not None:
            self._end_own_loop(loop)

    def _end_own_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_soon_threadsafe(loop.stop)
        assert self._own_loop is not None
        self._own_loop.join(5)
        loop.close()
        self._own_loop = None

    @property
    def writer_pid(self) -> int | None:
        """The writer process (for benchmarks and operators: it shows in ps as aggregator.sqlite_writer)."""
        return self._worker.pid if self._worker is not None else None

    @property
    def writer_restarts(self) -> int:
        """Writers that died and were replaced."""
        return self._worker.restarts if self._worker is not None else 0

    @property
    def queue_depth(self) -> int:
        """Batches handed over and not yet committed."""
        return len(self._unconfirmed)

    def submit(self, batch: Batch) -> None:
        """Hand a batch to the writer (any thread; never blocks)."""
        if threading.get_ident() == self._loop_thread:
            self._send(batch)
        else:
            assert self._loop is not None, "submit before start"
            self._loop.call_soon_threadsafe(self._send, batch)

    def commit(self, batch: Batch) -> asyncio.Future[None]:
        """Submit ``batch``; the returned future, of the calling thread's running loop, resolves once
        the writer has committed it. For writers off the message path that need their rows stored
        before they go on (offers): they await it, no thread waits, and the rows still go through
        the one writer."""
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not committed.done():  # the caller may have given up (a timeout cancels the future)
                committed.set_result(None)

        if loop is self._loop:
            batch.on_commit.append(resolve)
        else:  # a store on a loop of its own (Store.open): on_commit runs on that loop's thread
            batch.on_commit.append(lambda: loop.call_soon_threadsafe(resolve))
        self.submit(batch)
        return committed

    def send_acks_to(self, address: str | None) -> None:
        """Where the writer sends acknowledgements from now on (the MQTT process's socket; on the loop)."""
        self.acks_to = address
        if self._worker is not None:
            self._worker.send(("acks_to", address))

    # ------------------------------------------------------------------ the writer's frames (on the loop)

    def _send(self, batch: Batch) -> None:
        if self._worker is None or self._drained is None:  # after stop: nothing will commit it
            log.error("event=batch-after-close rows=%d acks=%d", batch.rows(), len(batch.acks))
            return
        self._seq += 1
        self._unconfirmed[self._seq] = batch
        self._drained.clear()
        self._worker.send(("batch", self._seq, batch.tables(), batch.acks))

    def _resend(self, worker: Worker) -> None:
        """A writer (re)started: where to acknowledge, then every batch not yet confirmed, in order."""
        if self.acks_to is not None:
            worker.send(("acks_to", self.acks_to))
        for seq, batch in sorted(self._unconfirmed.items()):
            worker.send(("batch", seq, batch.tables(), batch.acks))

    def _died(self, code: int | None) -> None:
        self.writable = False
        self.stats.errors += 1
        log.error("event=writer-died code=%s action=restart unconfirmed=%d", code, len(self._unconfirmed))

    def _frame(self, frame: tuple[Any, ...]) -> None:
        kind = frame[0]
        if kind == "committed":
            self._committed(frame[1], frame[2])
        elif kind == "failing":
            self.writable = False
            self.stats.errors += 1
        elif kind == "retention":
            self.stats.retention_deleted += frame[1]

    def _committed(self, seqs: list[int], info: dict[str, Any]) -> None:
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
                except Exception:  # one figure's bug must not cost the others their callbacks
                    log.exception("event=on-commit-callback-failed")
        if not self._unconfirmed and self._drained is not None:
            self._drained.set()


def read_query(path: Path | str, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """Run a read-only query on a fresh connection (call from an executor thread, not the loop)."""
    conn = connect(path, readonly=True)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, tuple(params))]
    finally:
        conn.close()
