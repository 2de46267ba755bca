"""The roll-up process: folds new rows into the roll-ups whenever the aggregator asks.

``python -m aggregator.analytics.updater DB TIMEZONE ZONE_GAP_S``, started by
:class:`aggregator.analytics.service.AnalyticsService`, which explains why a process. Protocol, in
:mod:`aggregator.child_process` frames over stdin/stdout: parent -> child ``("update",)``; child ->
parent ``("updated", rows_read)`` or ``("failed", message)`` (a SQLite error: locked past the busy
timeout, disk full; the next request tries again). End-of-file on stdin, the aggregator closing
the pipe or dying, ends the process. A roll-up cut short by a kill is rolled back by SQLite: the
roll-ups are derived data, the next update redoes it.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from typing import BinaryIO

from aggregator.analytics.definitions import AnalyticsParams
from aggregator.analytics.rollup import Rollup
from aggregator.analytics.schema import connect, ensure_core_tables
from aggregator.child_process import read_frame, set_up_child, write_frame

# Below the aggregator's own processes: a roll-up takes the CPU that ingest leaves over.
NICE = 10


def serve(inp: BinaryIO, out: BinaryIO, rollup: Rollup) -> None:
    while True:
        frame = read_frame(inp)
        if frame is None:
            return
        try:
            rows = rollup.update() if rollup.is_behind() else 0
        except sqlite3.Error as exc:
            write_frame(out, ("failed", f"{type(exc).__name__}: {exc}"))
            continue
        write_frame(out, ("updated", rows))


def main(argv: list[str] | None = None) -> int:
    db, timezone, zone_gap_s = sys.argv[1:] if argv is None else argv
    set_up_child()
    os.nice(NICE)
    conn = connect(db)
    try:
        ensure_core_tables(conn)
        rollup = Rollup(conn, AnalyticsParams(timezone=timezone, zone_gap_s=float(zone_gap_s)))
        serve(sys.stdin.buffer, sys.stdout.buffer, rollup)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
