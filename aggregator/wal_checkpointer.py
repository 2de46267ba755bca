"""Checkpoints the SQLite writer's WAL from a thread of its own, so a COMMIT never waits on the disk.

Why: with SQLite's automatic checkpoint, the COMMIT that takes the WAL past 1,000 pages copies
them into the database file and fsyncs it before it returns. In the ingest benchmark one such
COMMIT took 1.26 s on a busy disk (nothing acknowledged for that long, while messages kept
arriving), and the copying doubled the median COMMIT offline (34 -> 15 ms for 1,000 messages
without it). The writer's connection therefore runs with ``wal_autocheckpoint = 0`` and this
thread, on a connection of its own, checkpoints PASSIVE every ``interval_s``: alongside the
writer, which goes on appending to the WAL meanwhile.

The catch: the WAL only starts again from its beginning when a writer begins a transaction with
all of it copied, and a PASSIVE checkpoint never catches up with a writer that commits while it
runs (offline, the WAL grew to 1 GB). So when a pass leaves more than ``reset_frames`` in the WAL,
the thread takes :attr:`lock`, which the writer holds around each of its transactions, and copies
what was committed during that pass: usually a short wait, once every ``reset_frames`` pages. The
writer's next transaction then rewinds the WAL, and ``journal_size_limit`` trims the file.

Durability is unchanged: ``synchronous = NORMAL`` in WAL mode never fsyncs on COMMIT; a
checkpoint syncs the WAL before it copies and the database after, wherever it runs.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("aggregator.wal_checkpointer")

class WalCheckpointer:
    """A daemon thread checkpointing one database's WAL; :attr:`lock` guards the writer's transactions."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, interval_s: float = 0.25,
                 reset_frames: int = 16_384) -> None:
        self.lock = threading.Lock()
        self.interval_s = interval_s
        self.reset_frames = reset_frames
        self.passes = 0
        self.resets = 0  # passes that had to hold the writer back to copy the rest
        self._conn = connect()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpointer", daemon=True)

    def configure_writer(self, conn: sqlite3.Connection) -> None:
        """The writer's side: no checkpoint inside its COMMITs, and a WAL file trimmed to
        ``reset_frames`` pages after a rewind."""
        page_bytes = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {int(self.reset_frames) * page_bytes}")

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the pass in progress (the writer's last close checkpoints whatever is left)."""
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join()
        self._conn.close()

    def checkpoint(self) -> None:
        """One pass: copy what the WAL holds; if it is long, hold the writer back and copy the rest."""
        try:
            _, frames, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.passes += 1
            if frames >= self.reset_frames:
                with self.lock:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.resets += 1
        except sqlite3.Error as exc:  # a full disk, a locked file: the next pass tries again
            log.warning("event=checkpoint-failed error=%r", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.checkpoint()
