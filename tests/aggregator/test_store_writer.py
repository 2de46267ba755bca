"""Store: the writer process commits every batch once, acknowledges after commit, survives its own death."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

from aggregator.child_process import child_command, encode_frame, read_frame
from aggregator.store import Batch, Store, create_schema
from tests.conftest import process_ended, wait_for


def _batch(i: int, acked: list[int], lock: threading.Lock) -> Batch:
    batch = Batch(messages=[(f"m:{i}", "agent-1", "move", 1.7e9 + i, "d", "{}")],
                  sightings=[(1.7e9 + i, "v", "d", "v1", 1.0, 2.0, 1.0, None)],
                  visits={"v1": ("v1", "v", "d", None, 1.7e9, None, 1.7e9 + i, 0, i)})

    def committed() -> None:
        with lock:
            acked.append(i)

    batch.on_commit.append(committed)
    return batch


def _count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def test_every_batch_is_committed_before_its_callback_and_close_drains_the_queue(sqlite_path: Path) -> None:
    store = Store(sqlite_path)
    store.open()
    acked: list[int] = []
    lock = threading.Lock()
    for i in range(500):
        store.submit(_batch(i, acked, lock))
    store.close()
    assert sorted(acked) == list(range(500))
    assert _count(sqlite_path, "messages") == 500
    assert _count(sqlite_path, "sightings") == 500
    assert _count(sqlite_path, "visits") == 1
    assert store.queue_depth == 0
    assert store.stats.rows == 500 * 3 and 1 <= store.stats.commits <= 500
    assert store.writable is False  # closed


def test_a_killed_writer_is_restarted_and_unconfirmed_batches_are_written_once(sqlite_path: Path) -> None:
    store = Store(sqlite_path)
    store.open()
    acked: list[int] = []
    lock = threading.Lock()
    try:
        for i in range(200):
            store.submit(_batch(i, acked, lock))
        first = store.writer_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)  # mid-stream: some batches committed, some not
        for i in range(200, 400):
            store.submit(_batch(i, acked, lock))
        wait_for(lambda: len(acked) >= 400, timeout_s=30)
        assert store.writer_pid not in (None, first)  # a new writer took over
    finally:
        store.close()
    assert sorted(acked) == list(range(400))  # every callback ran exactly once
    assert _count(sqlite_path, "messages") == 400
    # rows without a primary key are not written twice either: a batch is resent only if unconfirmed
    assert _count(sqlite_path, "sightings") == 400


def test_the_writer_exits_when_the_aggregator_is_gone(sqlite_path: Path) -> None:
    """kill -9 of the aggregator closes the pipe; the writer must not linger holding the database."""
    create_schema(sqlite_path)
    argv, env = child_command("aggregator.sqlite_writer", str(sqlite_path), "0", "3600", "100")
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(encode_frame(("batch", 1, {"messages": [("m:1", "a", "move", 1.7e9, "d", "{}")]}, [])))
    child.stdin.close()  # what the kernel does to the pipe when the parent dies
    assert child.wait(timeout=10) == 0
    assert read_frame(child.stdout)[:2] == ("committed", [1])  # what it had read was committed first
    child.stdout.close()
    assert _count(sqlite_path, "messages") == 1


def test_retention_runs_when_the_writer_starts_and_on_its_interval(sqlite_path: Path) -> None:
    now = time.time()
    store = Store(sqlite_path, retention_days=1, retention_interval_s=0.2)
    store.open()
    store.submit(Batch(messages=[("old", "a", "move", now - 3 * 86400, "d", "{}"),
                                 ("new", "a", "move", now - 60, "d", "{}")]))
    try:
        wait_for(lambda: store.stats.retention_deleted >= 1)  # on the interval
    finally:
        store.close()
    assert store.stats.retention_deleted == 1
    assert _count(sqlite_path, "messages") == 1
    store = Store(sqlite_path, retention_days=1e-6)  # everything is old now: gone as the writer starts
    store.open()
    store.close()
    assert store.stats.retention_deleted == 1 and _count(sqlite_path, "messages") == 0


def test_payloads_handed_over_as_bytes_are_stored_as_text(sqlite_path: Path) -> None:
    store = Store(sqlite_path)
    store.open()
    store.submit(Batch(messages=[("b:1", "a", "move", 1.7e9, "d", '{"x":"é"}'.encode()),
                                 ("b:2", "a", "move", 1.7e9, "d", '{"x":1}')]))
    store.close()
    conn = sqlite3.connect(sqlite_path)
    try:
        stored = conn.execute("SELECT typeof(payload), payload FROM messages ORDER BY msg_id").fetchall()
    finally:
        conn.close()
    assert stored == [("text", '{"x":"é"}'), ("text", '{"x":1}')]


def test_the_writer_outlives_a_stop_signal_to_the_group_until_the_store_closes(sqlite_path: Path) -> None:
    """Ctrl-C / systemd stop reach every process of the group: the writer waits for the aggregator."""
    store = Store(sqlite_path)
    store.open()
    acked: list[int] = []
    lock = threading.Lock()
    child = store.writer_pid
    assert child is not None
    store.submit(_batch(-1, acked, lock))  # acknowledged = the writer is up, its handlers set
    wait_for(lambda: acked)
    acked.clear()
    for sig in (signal.SIGINT, signal.SIGTERM):  # as systemd's stop (the whole cgroup) would
        os.kill(child, sig)
    for i in range(50):  # what the aggregator commits while it shuts down
        store.submit(_batch(i, acked, lock))
    wait_for(lambda: len(acked) >= 50)  # committed after the signals, by the same writer
    assert store.writer_pid == child and store.writer_restarts == 0
    store.close()
    assert process_ended(child)
    assert store.writer_pid is None and sorted(acked) == list(range(50))
    assert _count(sqlite_path, "messages") == 51


def test_rows_marshal_refuses_are_still_committed(tmp_path: Path) -> None:
    """Frames go as marshal dumps; a numpy float or a named tuple in a row is sent as the plain value."""
    import collections

    import numpy as np

    Point = collections.namedtuple("Point", "ts visitor device visit_id x y accuracy_m zone")
    store = Store(tmp_path / "w.db")
    store.open()
    done = threading.Event()
    try:
        batch = Batch(sightings=[(1.7e9, "v", "d", "v1", np.float64(1.5), 2.0, 1.0, None),
                                 Point(1.7e9 + 1, "v", "d", "v1", 3.0, 4.0, 1.0, "z")])
        batch.on_commit.append(done.set)
        store.submit(batch)
        assert done.wait(10), "the batch was never committed"
    finally:
        store.close()
    conn = sqlite3.connect(tmp_path / "w.db")
    assert conn.execute("SELECT x, zone FROM sightings ORDER BY ts").fetchall() == [(1.5, None), (3.0, "z")]
    conn.close()


async def test_commit_resolves_on_the_callers_loop_once_the_rows_are_committed(sqlite_path: Path) -> None:
    """Store.commit's future, on the store's own loop: resolved by the writer's "committed", after the
    rows are in the file (what the offers await instead of a thread blocked on an event)."""
    store = Store(sqlite_path)
    await store.start()
    try:
        acked: list[int] = []
        committed = store.commit(_batch(1, acked, threading.Lock()))
        assert not committed.done()  # not before the writer has answered
        await asyncio.wait_for(committed, 10)
        assert acked == [1] and _count(sqlite_path, "messages") == 1
    finally:
        await store.stop()
