"""The SQLite writer process: commits the batches :class:`aggregator.store.Store` sends it.

Why a process and not a thread: in one process the writer competed with the MQTT thread and the
event loop for the GIL. ``sqlite3`` releases the GIL around every row it steps and must win it
back for the next, so under load each row waited for the other threads' switch interval and the
whole pipeline slowed down (ingest benchmark: 8,600-8,800 msg/s with writes stubbed out vs
4,100-7,700 with the writer thread, same run). A child process has its own interpreter and,
on a 2-core machine, its own core.

Every write to the database goes through here: the core's rows from ingest and the offers' rows
(:mod:`aggregator.offers.persist`), so every write holds the checkpointer's lock.

Protocol, in :mod:`aggregator.child_process` frames. Parent -> child, on stdin:
``("batch", seq, tables, acks)``, ``("acks_to", address)``; end-of-file means commit what was read
and exit. Child -> parent, on stdout: ``("committed", seqs, stats)`` after every COMMIT,
``("failing", errors)``, ``("retention", deleted)`` (at start, then every retention interval). Child ->
MQTT process, on the Unix socket at ``address`` (:mod:`aggregator.mqtt_process` listens there):
``("ack", [(mid, qos), ...])`` after every COMMIT, before the parent hears of it. The child merges
whatever batches are waiting into one transaction (bigger transactions under load, immediate ones
when idle). A parent that dies (kill -9) closes the pipe: the child sees end-of-file and exits;
what it had not committed was never acknowledged to the broker, so the broker redelivers it to the
next aggregator. Acknowledgements that cannot be delivered (the MQTT process died) are dropped:
its connection went with it, and the broker redelivers those messages to the next one, where
INSERT OR IGNORE drops the repeat.

Only the standard library is imported here, so the process starts in a few tens of milliseconds.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import sqlite3
import sys
import time
from typing import Any, BinaryIO

from aggregator.child_process import encode_frame, read_frame, set_up_child, write_frame
from aggregator.wal_checkpointer import WalCheckpointer

log = logging.getLogger("aggregator.sqlite_writer")

# At most one COMMIT per this interval: a commit costs ~1 ms of CPU whatever its size (WAL pages of
# every index touched), and at 1,000 msg/s the event loop hands over a batch per message or two, so
# committing each as it came kept this process at 100 % of a core (measured with the latency
# benchmark) and slowed everything else on a 2-core machine. Waiting up to 10 ms to merge costs
# the acknowledgements (not the live map) that much latency; an idle stream still commits at once.
MIN_COMMIT_INTERVAL_S = 0.010

# (table, statement) in commit order; a batch's ``tables`` maps these names to lists of rows.
SQL = (
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
    ("visits", "INSERT INTO visits(visit_id, visitor, device, customer_id, start_ts, end_ts, last_seen_ts, "
               "passerby, seq) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(visit_id) DO UPDATE SET "
               "visitor = excluded.visitor, customer_id = excluded.customer_id, end_ts = excluded.end_ts, "
               "last_seen_ts = excluded.last_seen_ts, passerby = excluded.passerby, seq = excluded.seq"),
    # The offers' tables (aggregator.offers.persist). offer_state rows arrive as (shopper, snapshot or
    # None, ts); commit() splits them into the two statements below, None meaning nothing in progress.
    ("offer_state_gone", "DELETE FROM offer_state WHERE shopper = ?"),
    ("offer_state", "INSERT OR REPLACE INTO offer_state(shopper, snapshot, updated_ts) VALUES (?,?,?)"),
    ("offers", "INSERT INTO offers(ts, shopper, customer_id, rule, offer, department, coupon_id, prediction) "
               "VALUES (?,?,?,?,?,?,?,?)"),
    ("offer_log", "INSERT INTO offer_log(ts, line) VALUES (?,?)"),
    ("offer_log_keep", "DELETE FROM offer_log WHERE id <= (SELECT MAX(id) FROM offer_log) - ?"),  # rows (n,)
)
# What a batch carries, by name (offer_state_gone is made here, from offer_state).
TABLES = tuple(name for name, _ in SQL if name != "offer_state_gone")

# Raw, high-volume tables trimmed by retention, and links not seen for as long (Ingest.expire_links
# forgets the same ones). Visits and door counts are kept: the analytics roll-ups need them.
RETENTION_TABLES = (("messages", "ts"), ("sightings", "ts"), ("dead_letters", "received_ts"),
                    ("customer_events", "ts"), ("motion_events", "ts"), ("links", "ts"))


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
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


def delete_expired(conn: sqlite3.Connection, cutoff_ts: float) -> int:
    """Delete raw rows older than ``cutoff_ts`` from the retention tables, in one transaction."""
    with conn:
        return sum(conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (cutoff_ts,)).rowcount
                   for table, column in RETENTION_TABLES)


ACK_SEND_TIMEOUT_S = 5.0


class AckSender:
    """The writer's end of the MQTT process's acknowledgement socket: connected when first needed,
    again after the MQTT process is replaced (the parent names the new one's socket)."""

    def __init__(self) -> None:
        self.address: str | None = None
        self.sock: socket.socket | None = None
        self.dropped = 0  # acknowledgements for an MQTT process that was gone (the broker redelivers)

    def point_to(self, address: str | None) -> None:
        if self.sock is not None:
            self.sock.close()
        self.address, self.sock = address, None

    def send(self, acks: list[tuple[int, int]]) -> None:
        if not acks or self.address is None:
            return
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(ACK_SEND_TIMEOUT_S)
                self.sock.connect(self.address)
            self.sock.sendall(encode_frame(("ack", acks)))
        except OSError as exc:
            log.warning("event=acks-dropped count=%d error=%r", len(acks), exc)
            self.dropped += len(acks)
            self.point_to(self.address)


class _Writer:
    """The child's side: one connection, merged transactions, retention on a timer, WAL checkpoints
    on a thread of their own (:mod:`aggregator.wal_checkpointer`)."""

    def __init__(self, path: str, retention_s: float, retention_interval_s: float, max_rows: int,
                 out: BinaryIO) -> None:
        self.conn = connect(path)
        self.checkpointer = WalCheckpointer(lambda: connect(path))
        self.checkpointer.configure_writer(self.conn)
        self.checkpointer.start()
        self.retention_s = retention_s
        self.retention_interval_s = retention_interval_s
        self.max_rows = max_rows
        self.out = out
        self.acks = AckSender()
        self.next_retention = 0.0  # at start: an aggregator that was down for a while catches up at once

    def commit(self, tables: dict[str, list[Any]], seqs: list[int], acks: list[tuple[int, int]]) -> None:
        messages = tables.get("messages")
        if messages:  # payloads arrive as the bytes received; the column is TEXT (JSON, UTF-8)
            tables["messages"] = [r if not isinstance(r[5], bytes) else (*r[:5], r[5].decode("utf-8", "replace"))
                                  for r in messages]
        states = tables.get("offer_state")
        if states:  # merged batches may change one shopper twice: the last change wins
            latest = {row[0]: row for row in states}.values()
            tables["offer_state_gone"] = [(row[0],) for row in latest if row[1] is None]
            tables["offer_state"] = [row for row in latest if row[1] is not None]
        rows = sum(len(v) for v in tables.values())
        started = time.perf_counter()
        errors = duplicates = 0
        while True:
            try:
                with self.checkpointer.lock, self.conn:
                    for name, sql in SQL:
                        batch_rows = tables.get(name)
                        if batch_rows:
                            cur = self.conn.executemany(sql, batch_rows)
                            if name == "messages":
                                duplicates = len(batch_rows) - max(cur.rowcount, 0)
                break
            except sqlite3.Error as exc:  # disk full, locked for too long: keep the batch, retry
                errors += 1
                log.error("event=commit-failed error=%r rows=%d retry_in_s=1", exc, rows)
                write_frame(self.out, ("failing", errors))
                time.sleep(1.0)
                if os.getppid() == 1:  # the aggregator is gone: nobody would acknowledge this
                    raise SystemExit(1) from None
        elapsed = time.perf_counter() - started
        self.acks.send(acks)  # straight to the MQTT process; the parent hears of it only for its figures
        write_frame(self.out, ("committed", seqs, {"rows": rows, "duplicates": duplicates, "seconds": elapsed}))

    def maybe_retention(self) -> None:
        """Delete what is past retention, if it is time (cheap otherwise: called every turn)."""
        if self.retention_s <= 0 or time.monotonic() < self.next_retention:
            return
        self.next_retention = time.monotonic() + self.retention_interval_s
        cutoff = time.time() - self.retention_s
        try:
            with self.checkpointer.lock:
                deleted = delete_expired(self.conn, cutoff)
        except sqlite3.Error as exc:
            log.error("event=retention-failed error=%r", exc)
            return
        if deleted:
            log.info("event=retention deleted=%d cutoff_ts=%.0f", deleted, cutoff)
        write_frame(self.out, ("retention", deleted))

    def close(self) -> None:
        self.acks.point_to(None)
        self.checkpointer.stop()
        self.conn.close()  # the last connection to close checkpoints the rest and removes the WAL


def serve(inp: BinaryIO, out: BinaryIO, path: str, retention_s: float, retention_interval_s: float,
          max_rows: int) -> None:
    writer = _Writer(path, retention_s, retention_interval_s, max_rows, out)
    fd = inp.fileno()
    last_commit = 0.0
    try:
        while True:
            writer.maybe_retention()
            if not select.select([fd], [], [], 1.0)[0]:
                continue
            # what is waiting, and what comes until the merge window closes: one transaction
            seqs, tables, acks, rows, ended = [], {}, [], 0, False
            merge_until = last_commit + MIN_COMMIT_INTERVAL_S
            while True:
                frame = read_frame(inp)
                if frame is None:
                    ended = True  # the aggregator is done (or gone): commit what was read, then exit
                elif frame[0] == "acks_to":
                    writer.acks.point_to(frame[1])
                else:  # ("batch", seq, tables, acks)
                    seqs.append(frame[1])
                    acks += frame[3]
                    for name, extra in frame[2].items():
                        tables.setdefault(name, []).extend(extra)
                        rows += len(extra)
                if ended or rows >= max_rows or not select.select(
                        [fd], [], [], max(0.0, merge_until - time.monotonic()))[0]:
                    break
            if seqs:
                writer.commit(tables, seqs, acks)
                last_commit = time.monotonic()
            if ended:
                return
    finally:
        writer.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path, retention_s, retention_interval_s, max_rows = args[0], float(args[1]), float(args[2]), int(args[3])
    set_up_child()  # the aggregator commits what it holds, then closes the pipe: end-of-file is our exit
    # Unbuffered input: the loop select()s on the descriptor, and a buffered reader could hold a
    # whole frame the descriptor no longer shows as readable.
    inp = os.fdopen(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
    try:
        serve(inp, sys.stdout.buffer, path, retention_s, retention_interval_s, max_rows)
    except (BrokenPipeError, KeyboardInterrupt):
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
