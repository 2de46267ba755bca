"""The roll-ups inside the running aggregator: updated in a process of their own, read through a thread.

Updates run in a child process (:mod:`aggregator.analytics.updater`, niced), a
:class:`~aggregator.child_process.Worker` asked from the event loop, one request at a time; the
stats reads run on one worker thread with its own connection (quick indexed look-ups of the
roll-up tables). A background task asks for an update when the bus reports stored events,
at most every ``min_gap_s`` (and at least every ``interval_s``); each stats read first has the
process fold in anything new, so answers are current whatever the cadence.

Why a process: an update is Python work, seconds of it when it folds in a backlog, and in a
thread of the aggregator it held the GIL the event loop needs: in the ingest benchmark's 600k
message drain, acknowledgements fell from ~30k to 4-9k msg/s for the 3-4 s of each roll-up. In a
process of its own, below the aggregator's priority, it takes the CPU ingest leaves over; and the
roll-ups' own file (:mod:`aggregator.analytics.schema`) means it never holds the core file's lock.

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
from aggregator.analytics.schema import connect
from aggregator.child_process import Worker

log = logging.getLogger(__name__)
T = TypeVar("T")
# Bus kinds written to sightings/visits/door_events by ingest: worth an early update.
WAKE_KINDS = ("enter", "move", "exit", "door")
MIN_GAP_S = 5.0  # background updates at most this often (reads still catch up first)


class UpdateFailed(Exception):
    """A roll-up update did not happen (a SQLite error in the roll-up process, or the process died)."""


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
        self._conn: sqlite3.Connection | None = None  # the reads' (the worker thread's)
        self._worker: Worker | None = None  # the roll-up process, started by the first update
        self._one_at_a_time = asyncio.Lock()
        self._reply: asyncio.Future[tuple[Any, ...]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()

    # ---------------------------------------------------------------- the roll-up process
    @property
    def pid(self) -> int | None:
        """The roll-up process, once the first update started it."""
        return self._worker.pid if self._worker is not None else None

    @property
    def restarts(self) -> int:
        """Roll-up processes that died and were replaced."""
        return self._worker.restarts if self._worker is not None else 0

    async def catch_up(self) -> int:
        """Fold in every stored row not yet in the roll-ups; returns how many were read."""
        async with self._one_at_a_time:
            if self._worker is None:
                self._worker = Worker("aggregator.analytics.updater", str(self.db_path), self.params.timezone,
                                      repr(self.params.zone_gap_s), on_frame=self._answer, on_exit=self._died)
                await self._worker.start()
            await self._worker.started()  # one that died is started again after a short delay
            self._reply = asyncio.get_running_loop().create_future()
            if not self._worker.send(("update",)):
                raise UpdateFailed("the roll-up process is starting again after it exited")
            reply = await self._reply
        if reply[0] == "failed":
            raise UpdateFailed(reply[1])
        if reply[1]:
            self.updates += 1
        return int(reply[1])

    def _answer(self, frame: tuple[Any, ...]) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(frame)

    def _died(self, code: int | None) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(UpdateFailed(f"the roll-up process exited (code {code}); it is started again"))

    # ---------------------------------------------------------------- reads
    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in the worker thread, after catching up."""
        try:
            await self.catch_up()
        except UpdateFailed as exc:  # answer from the roll-ups as they are
            self.errors += 1
            log.warning("event=analytics-update-failed error=%s count=%d during=read", exc, self.errors)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="analytics")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._query, fn, args)

    def _query(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._conn is None:
            self._conn = connect(self.db_path)
        return fn(self._conn, *args)

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

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
            except UpdateFailed as exc:  # locked or busy past the timeout, the process died: next tick
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
        if self._worker is not None:  # an update cut short is rolled back by SQLite; the next one redoes it
            await self._worker.stop(2.0)
            self._worker = None
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_conn)
            self._executor.shutdown(wait=True)
            self._executor = None
