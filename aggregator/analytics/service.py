"""The roll-ups inside the running aggregator: updated off the event loop, read through the same thread.

One worker thread owns one SQLite connection (sqlite3 objects must stay in one thread, and one
writer avoids lock contention). A background task wakes it when the bus reports stored events,
at most every ``min_gap_s`` (and at least every ``interval_s``); each stats read first folds in
anything new, so answers are current whatever the cadence.

Why the gap: an update recomputes every (visitor, day) its new rows touch from that visitor's
rows of the day, and with shoppers moving all the time every update touches all of them. Run
back to back (the bus wakes it on every move), that took ~30 % of the aggregator's CPU at 1,000
msg/s (py-spy of the latency benchmark) and grew with the length of the visits; once per few
seconds it costs a few percent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aggregator.analytics.definitions import AnalyticsParams
from aggregator.analytics.rollup import Rollup
from aggregator.analytics.schema import connect, ensure_core_tables

log = logging.getLogger(__name__)
T = TypeVar("T")
# Bus kinds written to sightings/visits/door_events by ingest: worth an early update.
WAKE_KINDS = ("enter", "move", "exit", "door")
MIN_GAP_S = 5.0  # background updates at most this often (reads still catch up first)


class AnalyticsService:
    def __init__(self, db_path: str | Path, params: AnalyticsParams, *, interval_s: float = 30.0,
                 min_gap_s: float = MIN_GAP_S) -> None:
        self.db_path = Path(db_path)
        self.params = params
        self.interval_s = interval_s
        self.min_gap_s = min_gap_s
        self.updates = 0
        self.errors = 0
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._rollup: Rollup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()

    # ---------------------------------------------------------------- worker thread side
    def _ensure(self) -> Rollup:
        if self._rollup is None:
            self._conn = connect(self.db_path)
            ensure_core_tables(self._conn)
            self._rollup = Rollup(self._conn, self.params)
        return self._rollup

    def _catch_up(self) -> int:
        rollup = self._ensure()
        if not rollup.is_behind():
            return 0
        n = rollup.update()
        self.updates += 1
        return n

    def _read(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        self._catch_up()
        assert self._conn is not None
        return fn(self._conn, *args)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._rollup = None

    # ---------------------------------------------------------------- event loop side
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="analytics")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def catch_up(self) -> int:
        """Fold in every stored row not yet in the roll-ups; returns how many were read."""
        return await self._run(self._catch_up)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in the worker thread, after catching up."""
        return await self._run(self._read, fn, args)

    def wake(self) -> None:
        """Ask for an update soon (e.g. after a commit)."""
        self._wake.set()

    async def start(self, bus: Any = None) -> None:
        self._tasks.append(asyncio.create_task(self._updater(), name="analytics-updater"))
        if bus is not None:
            self._tasks.append(asyncio.create_task(self._listen(bus), name="analytics-bus"))

    async def _updater(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            await asyncio.sleep(self.min_gap_s)  # let a few seconds of rows gather: one pass for all
            self._wake.clear()
            try:
                n = await self.catch_up()
                if n:
                    log.debug("event=analytics-update rows=%d", n)
            except sqlite3.Error as exc:  # locked or busy past the timeout: try again next tick
                self.errors += 1
                log.warning("event=analytics-update-failed error=%s count=%d", exc, self.errors)

    async def _listen(self, bus: Any) -> None:
        with bus.subscribe(WAKE_KINDS, maxsize=1000) as sub:
            while True:
                await sub.get()
                sub.get_nowait_all()
                self.wake()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
            self._executor.shutdown(wait=True)
            self._executor = None
