"""The roll-ups are computed in a niced process of their own, started again after a crash, ended with the service."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.analytics.definitions import AnalyticsParams
from aggregator.analytics.schema import rollup_path
from aggregator.analytics.service import AnalyticsService, UpdateFailed
from aggregator.analytics.updater import NICE
from tests.aggregator.conftest import wait_until
from tests.analytics.streams import one_shopper
from tests.conftest import REPO, process_ended

T = 1_773_100_800.0  # 2026-03-10 00:00 UTC
PARAMS = AnalyticsParams(timezone="UTC")


def _visitors(conn: sqlite3.Connection) -> list[tuple]:
    return conn.execute("SELECT day, visitors FROM an_daily").fetchall()


def _niceness(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


async def test_updates_run_in_a_niced_child_that_is_started_again_after_a_crash(core_db: sqlite3.Connection,
                                                                           sqlite_path: Path) -> None:
    service = AnalyticsService(sqlite_path, PARAMS)
    try:
        one_shopper(core_db, 1, T)
        assert await service.catch_up() > 0
        pid = service.pid
        assert pid is not None and pid != os.getpid()
        assert _niceness(pid) >= _niceness(os.getpid()) + NICE
        assert await service.read(_visitors) == [("2026-03-10", 1)]

        os.kill(pid, signal.SIGKILL)  # e.g. the OOM killer
        await wait_until(lambda: service.restarts == 1)
        one_shopper(core_db, 2, T)
        assert await service.read(_visitors) == [("2026-03-10", 2)]  # a new one took the request
        assert service.pid not in (None, pid)
        assert service.errors == 0
    finally:
        await service.stop()
    assert process_ended(pid)


async def test_stopping_the_service_ends_the_process(core_db: sqlite3.Connection, sqlite_path: Path) -> None:
    service = AnalyticsService(sqlite_path, PARAMS)
    one_shopper(core_db, 1, T)
    await service.catch_up()
    pid = service.pid
    assert pid is not None
    await service.stop()
    assert process_ended(pid, timeout_s=0.1)  # stop returned after it exited


def test_the_process_exits_when_the_aggregator_is_gone(core_db: sqlite3.Connection, sqlite_path: Path) -> None:
    one_shopper(core_db, 1, T)
    # An aggregator stand-in that starts the process, asks for one update, then dies by SIGKILL.
    script = ("import sys, time\n"
              "import subprocess\n"
              "from aggregator.child_process import child_command, read_frame, write_frame\n"
              f"argv, env = child_command('aggregator.analytics.updater', {str(sqlite_path)!r}, 'UTC', '600')\n"
              "p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n"
              "write_frame(p.stdin, ('update',)); print(read_frame(p.stdout), p.pid, flush=True)\n"
              "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert parent.stdout is not None
    reply, pid = parent.stdout.readline().rsplit(" ", 1)
    assert reply.startswith("('updated', ")
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    assert process_ended(int(pid))
    assert _visitors(core_db) == [("2026-03-10", 1)]


async def test_a_process_dying_in_the_middle_of_an_update_is_a_counted_failure(core_db: sqlite3.Connection,
                                                                              sqlite_path: Path) -> None:
    service = AnalyticsService(sqlite_path, PARAMS)
    try:
        one_shopper(core_db, 1, T)
        await service.catch_up()
        pid = service.pid
        assert pid is not None
        one_shopper(core_db, 2, T)
        blocker = sqlite3.connect(rollup_path(sqlite_path), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # the next update waits for the roll-ups' file...
        update = asyncio.create_task(service.catch_up())
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGKILL)  # ... and is killed while it waits
        with pytest.raises(UpdateFailed, match="exited"):
            await update
        blocker.execute("ROLLBACK")
        blocker.close()
        assert await service.read(_visitors) == [("2026-03-10", 2)]  # a new process did the update
    finally:
        await service.stop()
