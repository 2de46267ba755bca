"""Incremental roll-ups equal a from-scratch recompute, whatever order and duplication the rows arrive in."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.analytics.definitions import AnalyticsParams
from aggregator.analytics.rollup import Rollup, snapshot
from aggregator.analytics.schema import connect, ensure_core_tables
from tests.analytics.streams import Writer

ZONES = ("Women's", "Men's", "Sport", None)
VISITORS = ("v1", "v2", "c-7")
# Around local midnight 2026-03-10 -> 11 (no DST change that night in either zone).
TZS = ("Europe/Warsaw", "Asia/Kolkata")


# Most times within 15 min of midnight (entries and visits straddling it), some hours away.
offset_s = st.one_of(st.integers(-900, 900), st.integers(-3 * 3600, 3 * 3600))


def _midnight(tz: str) -> float:
    return datetime(2026, 3, 11, tzinfo=ZoneInfo(tz)).timestamp()


event = st.one_of(
    st.tuples(st.just("sight"), offset_s, st.sampled_from(VISITORS),
              st.sampled_from(ZONES), st.integers(0, 2)),
    st.tuples(st.just("visit"), st.integers(0, 2), st.sampled_from(VISITORS), offset_s,
              st.integers(0, 8 * 3600), st.booleans()),
    st.tuples(st.just("door"), st.integers(0, 12), offset_s, st.sampled_from(["in", "out"])),
    st.tuples(st.just("dup")),
    st.tuples(st.just("update")),
    st.tuples(st.just("back-8d")),
)


def _play(conn: sqlite3.Connection, rollup: Rollup, events: list[tuple], base: float) -> None:
    w = Writer(conn)
    last_sight: tuple | None = None
    shift = 0.0
    for ev in events:
        kind = ev[0]
        if kind == "sight":
            _k, dt, visitor, zone, visit = ev
            last_sight = (base + shift + dt, visitor, zone, f"visit-{visit}")
            w.sighting(*last_sight)
        elif kind == "visit":
            _k, n, visitor, dt, dur, passerby = ev
            w.visit(f"visit-{n}", visitor, base + shift + dt, base + shift + dt + dur, passerby=int(passerby))
        elif kind == "door":
            _k, n, dt, direction = ev
            w.door(f"door-{n}", base + shift + dt, direction)
        elif kind == "dup" and last_sight:
            w.sighting(*last_sight)
        elif kind == "back-8d":  # later rows land 8 days earlier: occasional visitors, history arriving late
            shift = -8 * 86400.0 if shift == 0 else 0.0
        elif kind == "update":
            rollup.update(batch_rows=3)


@settings(max_examples=int(os.environ.get("ROLLUP_CASES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event, max_size=60), tz=st.sampled_from(TZS), gap_s=st.sampled_from([600.0, 60.0]))
def test_incremental_equals_recompute(tmp_path_factory, events: list[tuple], tz: str, gap_s: float) -> None:
    path = tmp_path_factory.mktemp("rollup") / "f.db"
    conn = connect(path)
    try:
        ensure_core_tables(conn)
        rollup = Rollup(conn, AnalyticsParams(timezone=tz, zone_gap_s=gap_s))
        rollup.recompute()  # an empty start, as a fresh server has
        _play(conn, rollup, events, _midnight(tz))
        rollup.update(batch_rows=4)
        assert not rollup.is_behind()
        incremental = snapshot(conn)
        rollup.recompute()
        assert snapshot(conn) == incremental
    finally:
        conn.close()


def _rows(conn: sqlite3.Connection, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def test_late_sighting_before_midnight_undoes_an_entry_after_it(core_db: sqlite3.Connection) -> None:
    """Regression: a row at 23:58 arriving after one at 00:05 must re-judge the next day's entry."""
    tz = "Asia/Kolkata"
    midnight = _midnight(tz)
    rollup = Rollup(core_db, AnalyticsParams(timezone=tz))
    w = Writer(core_db)
    w.sighting(midnight + 300, "v1", "Sport")
    rollup.update()
    assert _rows(core_db, "SELECT day, zone, entries FROM an_visitor_zone") == [("2026-03-11", "Sport", 1)]
    w.sighting(midnight - 120, "v1", "Sport")
    rollup.update()
    assert sorted(_rows(core_db, "SELECT day, zone, entries FROM an_visitor_zone")) == [
        ("2026-03-10", "Sport", 1), ("2026-03-11", "Sport", 0)]


def test_passerby_flag_flip_recounts_sightings_of_other_days(core_db: sqlite3.Connection) -> None:
    """A visit that starts before midnight and becomes a passer-by removes its sightings after midnight."""
    tz = "Europe/Warsaw"
    midnight = _midnight(tz)
    rollup = Rollup(core_db, AnalyticsParams(timezone=tz))
    w = Writer(core_db)
    w.visit("a", "v1", midnight - 60, None)
    w.sighting(midnight + 30, "v2", "Men's", "a")  # the sighting's visitor id differs (linked later)
    rollup.update()
    assert _rows(core_db, "SELECT day, visitors FROM an_hourly") == [("2026-03-11", 1)]
    w.visit("a", "v1", midnight - 60, midnight + 40, passerby=1)
    rollup.update()
    assert _rows(core_db, "SELECT day, visitors FROM an_hourly") == []
    assert _rows(core_db, "SELECT day, visitors, passersby FROM an_daily") == [("2026-03-10", 0, 1)]
