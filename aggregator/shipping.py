"""Ship closed visits to the chain directory (docs/DATA.md, "Chain shipping"), beside ingest, never in it.

Why a task of its own on its own read connection: the SQLite writer's path decides ingest speed
and is not to carry anything else. This task wakes every ``interval_s``, reads the visits that
closed since its high-water mark (``visits.seq``: ingest gives a visit a new, higher seq at every
change, the last one when it closes, and the writer commits in seq order), turns them into rows
(:mod:`aggregator.chain.rows`) and writes them with :class:`~aggregator.chain.layout.PartWriter`,
all in an executor thread.

Exactly once, resumable: before writing a batch the shipper records it as pending (seq range) in
its state file; the batch's files are named after that range. After a crash the pending batch is
read again (closed visits never change, so it is the same rows) and written again to the same
names, replacing any that made it; then the mark moves on. A full disk or a read-only chain
directory is a :class:`ShippingFailed`, logged once per reason and retried; ingest never notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from agent.config import ChainShipping
from agent.errors import FloorwalkerError
from aggregator.chain.layout import PartWriter, part_name, partition_dir
from aggregator.chain.rows import ChainRows

log = logging.getLogger(__name__)

RETRY_MAX_S = 300.0  # back-off ceiling after a failed batch (a chain mount that is down stays quiet)


class ShippingFailed(FloorwalkerError, OSError):
    """The chain directory could not take a batch (full, read-only, gone); it will be retried."""


@dataclass
class ShippingStats:
    batches: int = 0
    visits: int = 0
    zone_visits: int = 0
    bytes: int = 0
    failures: int = 0
    high_water_seq: int = 0
    last_error: str = ""


def state_path(db_path: Path | str) -> Path:
    """The shipper's high-water mark lives beside the store database (the chain directory may be read-only)."""
    p = Path(db_path)
    return p.with_name(f"{p.stem}.chain-state.json")


class ChainShipper:
    """Reads closed visits from the store database and writes them into the chain directory."""

    def __init__(self, db_path: Path | str, store_id: str, timezone: str, config: ChainShipping, *,
                 writer: PartWriter | None = None) -> None:
        self.db_path = Path(db_path)
        self.store_id = store_id
        self.config = config
        self.rows = ChainRows(store_id, timezone, config.key.encode("utf-8"))
        self.writer = writer or PartWriter()
        self.state_file = state_path(self.db_path)
        self.stats = ShippingStats()
        self._conn: sqlite3.Connection | None = None
        self._busy = threading.Lock()  # one pass at a time; close() waits for the pass in flight
        self._stopping = threading.Event()  # set at shutdown: the pass in flight ends after its batch

    # ------------------------------------------------------------------ state
    def _load_state(self) -> tuple[int, int | None]:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            return int(data["shipped_seq"]), (int(data["pending_seq"]) if data.get("pending_seq") else None)
        except FileNotFoundError:
            return 0, None
        except (ValueError, KeyError, TypeError) as exc:
            raise ShippingFailed(f"{self.state_file}: unreadable shipping state ({exc}); "
                                 "fix or delete it (deleting ships everything again)") from None

    def _save_state(self, shipped_seq: int, pending_seq: int | None) -> None:
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"store": self.store_id, "shipped_seq": shipped_seq, "pending_seq": pending_seq}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_file)

    # ------------------------------------------------------------------ one pass
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(str(self.db_path), timeout=30.0, check_same_thread=False)
            # The analytics roll-up creates the same index (same name and columns): a visit's sightings.
            conn.execute("CREATE INDEX IF NOT EXISTS an_sightings_visit ON sightings(visit_id)")
            self._conn = conn
        return self._conn

    def stop(self) -> None:
        """Ask a pass in flight to end after the batch it is writing (a big backlog must not hold up
        shutdown); the next start resumes from the mark."""
        self._stopping.set()

    def close(self) -> None:
        with self._busy:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def ship_once(self) -> int:
        """Ship every visit closed since the mark, a batch at a time; returns visits shipped. Blocking."""
        with self._busy:
            return self._ship()

    def _ship(self) -> int:
        shipped, pending = self._load_state()
        self.stats.high_water_seq = shipped
        total = 0
        while not self._stopping.is_set():
            conn = self._connection()
            if pending is None:
                pending = self.rows.batch_end(conn, shipped, self.config.batch_rows)
                if pending is None:
                    return total
                self._save_state(shipped, pending)
            total += self._write_batch(conn, shipped, pending)
            shipped, pending = pending, None
            self._save_state(shipped, None)
            self.stats.high_water_seq = shipped
        return total

    def _write_batch(self, conn: sqlite3.Connection, after_seq: int, last_seq: int) -> int:
        batch = self.rows.read(conn, after_seq, last_seq)
        name = part_name(after_seq + 1, last_seq)
        root = self.config.directory
        try:
            for kind, parts in (("visits", batch.visits), ("zone_visits", batch.zone_visits)):
                for (day, hour), rows in sorted(parts.items()):
                    path = partition_dir(root, kind, self.store_id, day, hour) / name
                    self.stats.bytes += self.writer.write(path, rows)
        except OSError as exc:
            raise ShippingFailed(_reason(exc, root)) from None
        n_visits = sum(len(r) for r in batch.visits.values())
        self.stats.batches += 1
        self.stats.visits += n_visits
        self.stats.zone_visits += sum(len(r) for r in batch.zone_visits.values())
        log.info("event=chain-shipped store=%s seq=%d-%d visits=%d", self.store_id, after_seq + 1, last_seq,
                 n_visits)
        return n_visits

    # ------------------------------------------------------------------ the task
    async def run(self) -> None:
        """Ship, sleep ``interval_s``, again; back off (up to RETRY_MAX_S) while the chain directory fails."""
        loop = asyncio.get_running_loop()
        delay_s = self.config.interval_s
        reported = ""
        while True:
            try:
                await loop.run_in_executor(None, self.ship_once)
                delay_s = self.config.interval_s
                if reported:
                    log.info("event=chain-shipping-recovered store=%s", self.store_id)
                    reported = ""
            except (ShippingFailed, OSError, sqlite3.Error) as exc:
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                if str(exc) != reported:  # once per reason, not once per retry
                    log.error("event=chain-shipping-failed store=%s error=%r retry_s=%.0f", self.store_id,
                              str(exc), delay_s)
                    reported = str(exc)
                delay_s = min(RETRY_MAX_S, delay_s * 2)
            await asyncio.sleep(delay_s)


def _reason(exc: OSError, root: Path) -> str:
    if exc.errno == errno.ENOSPC:
        what = "no space left"
    elif exc.errno == errno.EROFS:
        what = "read-only filesystem"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        what = "permission denied"
    else:
        what = exc.strerror or type(exc).__name__
    return f"chain directory {root}: {what} ({exc.filename or root})"


async def shipping_lifecycle(shipper: ChainShipper) -> AsyncIterator[None]:
    """For an aiohttp ``cleanup_ctx``: the shipping task for the application's lifetime."""
    task = asyncio.create_task(shipper.run(), name="chain-shipper")
    log.info("event=chain-shipping-started store=%s dir=%s", shipper.store_id, shipper.config.directory)
    try:
        yield
    finally:
        shipper.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.get_running_loop().run_in_executor(None, shipper.close)  # after the pass in flight


CHAIN_SHIPPER: web.AppKey[ChainShipper] = web.AppKey("chain_shipper")  # set when the store ships
