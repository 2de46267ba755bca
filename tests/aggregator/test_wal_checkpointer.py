"""The WAL checkpointer: commits never copy the WAL themselves, and a writer that never pauses still gets it rewound."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from aggregator.sqlite_writer import connect
from aggregator.wal_checkpointer import WalCheckpointer

PAGE_BYTES = 4096  # SQLite's default, which these files have

ROW = "x" * 1000


def _write(conn, lock, start: int, n: int, rows: int = 20) -> None:  # type: ignore[no-untyped-def]
    for i in range(start, start + n):
        with lock, conn:
            conn.executemany("INSERT INTO t(k, v) VALUES (?, ?)", [(f"{i}:{j}", ROW) for j in range(rows)])


def _wal_bytes(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_writers_commits_leave_the_copying_to_the_checkpointer(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    conn = connect(str(db))
    conn.execute("CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT)")
    checkpointer = WalCheckpointer(lambda: connect(str(db)))  # not started: one pass by hand
    checkpointer.configure_writer(conn)
    try:
        _write(conn, checkpointer.lock, 0, 300)  # ~1,500 pages: past SQLite's automatic 1,000
        assert _wal_bytes(db) > 1_000 * PAGE_BYTES
        assert os.path.getsize(db) <= 2 * PAGE_BYTES  # nothing copied into the database by a COMMIT
        checkpointer.checkpoint()
        assert os.path.getsize(db) > 1_000 * PAGE_BYTES
        assert checkpointer.passes == 1 and checkpointer.resets == 0
    finally:
        checkpointer.stop()
        conn.close()


def test_a_writer_that_never_pauses_still_has_its_wal_rewound(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    reset_frames = 256
    conn = connect(str(db))
    conn.execute("CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT)")
    checkpointer = WalCheckpointer(lambda: connect(str(db)), interval_s=0.005, reset_frames=reset_frames)
    checkpointer.configure_writer(conn)
    checkpointer.start()
    try:
        sizes = []
        for start in range(0, 3_000, 100):  # ~60 MB through the WAL, committed back to back
            _write(conn, checkpointer.lock, start, 100)
            sizes.append(_wal_bytes(db))
        assert checkpointer.resets >= 1
        # Without the rewind the WAL holds everything written (PASSIVE passes never catch up with
        # a writer that does not pause): it only grows, to ~100 MB. With it, it stays within a few
        # rewinds' worth, except while the checkpointer's thread waits for a CPU: on a loaded
        # machine (CI) it grew to 17-106 MB for a few tenths of a second, hence the median.
        assert statistics.median(sizes) < 16 * reset_frames * PAGE_BYTES, sizes
    finally:
        checkpointer.stop()
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 3_000 * 20
    conn.close()
    assert not Path(f"{db}-wal").exists()  # the last connection's close copied the rest and removed it
