"""Historical visitor sightings from another system: ``ts,device,zone[,x,y]`` CSV into the core tables.

The other system already decided these were visitors, so rows go in as they are: each row
becomes a sighting, and a device's consecutive rows form one visit until it goes unseen for
``visit_gap_s`` (the same absence that ends a live visit), marked as not a passer-by. A bad row
is counted and reported with its line number; it never stops the good ones.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.geometry import Plan
from agent.privacy import DeviceHasher

DEFAULT_VISIT_GAP_S = 1800.0
_NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?$")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")
MAX_REPORTED = 50
Progress = Callable[[int], None]


@dataclass
class ImportResult:
    rows: int = 0
    visits: int = 0
    bad: int = 0
    bad_lines: list[dict[str, object]] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.bad += 1
        if len(self.bad_lines) < MAX_REPORTED:
            self.bad_lines.append({"line": line, "reason": reason})

    def as_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "visits": self.visits, "bad": self.bad, "bad_lines": self.bad_lines}


class BadRow(ValueError):
    pass


def parse_ts(raw: str, tz: ZoneInfo) -> float:
    """Epoch seconds, or ISO 8601; an ISO time without an offset is the store's local time."""
    raw = raw.strip()
    if _NUMBER.match(raw):
        value = float(raw)
    else:
        try:
            dt = datetime.fromisoformat(raw)
        except ValueError:
            raise BadRow(f"ts is neither epoch seconds nor ISO 8601: {raw[:40]!r}") from None
        value = (dt if dt.tzinfo else dt.replace(tzinfo=tz)).timestamp()
    if not math.isfinite(value) or not 0 <= value < 4_102_444_800:  # before 2100
        raise BadRow(f"ts out of range: {raw[:40]!r}")
    return value


def pseudonym(device: str, hasher: DeviceHasher, ts: float) -> str:
    """A raw MAC never reaches the disk: it becomes the same keyed hash the agents would publish."""
    if not _MAC.match(device):
        return device
    return hasher.device_id(device.lower().replace("-", ":"), ts)


def _coordinate(raw: str, name: str) -> float | None:
    if raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRow(f"{name} is not a number: {raw[:20]!r}") from None
    if not math.isfinite(value):
        raise BadRow(f"{name} is not finite")
    return value


def parse_rows(lines: Iterable[str], *, tz: ZoneInfo, hasher: DeviceHasher, plan: Plan | None,
               result: ImportResult, progress: Progress | None = None
               ) -> dict[str, list[tuple[float, str | None, float | None, float | None]]]:
    """Good rows grouped by (pseudonymised) device; bad ones recorded in ``result``."""
    by_device: dict[str, list[tuple[float, str | None, float | None, float | None]]] = defaultdict(list)
    zone_names = {z.name for z in plan.zones} if plan else None
    for line_no, row in enumerate(csv.reader(lines), start=1):
        if progress and line_no % 10_000 == 0:
            progress(10_000)
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if line_no == 1 and row[0].strip().lower() == "ts":
            continue  # header
        try:
            if any("\ufffd" in cell for cell in row):
                raise BadRow("not valid UTF-8 text")
            if len(row) not in (3, 5):
                raise BadRow(f"expected 3 or 5 fields (ts,device,zone[,x,y]), got {len(row)}")
            ts = parse_ts(row[0], tz)
            device = row[1].strip()
            if not device:
                raise BadRow("device is empty")
            zone = row[2].strip() or None
            if zone and zone_names is not None and zone not in zone_names:
                raise BadRow(f"unknown zone {zone[:40]!r}")
            x = _coordinate(row[3], "x") if len(row) == 5 else None
            y = _coordinate(row[4], "y") if len(row) == 5 else None
            if (x is None) != (y is None):
                raise BadRow("x and y must both be given or both be empty")
            if x is None and zone and plan:
                found = plan.zone_named(zone)
                x, y = found.centroid if found else (None, None)
        except BadRow as exc:
            result.reject(line_no, str(exc))
            continue
        by_device[pseudonym(device, hasher, ts)].append((ts, zone, x, y))
    return by_device


def import_csv(conn: sqlite3.Connection, lines: Iterable[str], *, timezone: str, secret: str,
               plan: Plan | None = None, visit_gap_s: float = DEFAULT_VISIT_GAP_S, rotate_daily: bool = False,
               progress: Progress | None = None) -> ImportResult:
    """Insert the file's good rows as sightings plus derived visits, in one transaction."""
    result = ImportResult()
    hasher = DeviceHasher(secret, rotate_daily=rotate_daily, timezone=timezone)
    by_device = parse_rows(lines, tz=ZoneInfo(timezone), hasher=hasher, plan=plan, result=result, progress=progress)
    linked = dict(conn.execute("SELECT device, customer_id FROM links WHERE customer_id IS NOT NULL").fetchall())
    conn.execute("BEGIN IMMEDIATE")
    try:
        seq = int(conn.execute("SELECT MAX(seq) FROM visits").fetchone()[0] or 0)
        for device, rows in by_device.items():
            rows.sort(key=lambda r: r[0])
            customer = linked.get(device)
            visitor = customer or device
            for visit in _split(rows, visit_gap_s):
                seq += 1
                start, end = visit[0][0], visit[-1][0]
                visit_id = "imp-" + hashlib.sha1(f"{device}|{start!r}".encode()).hexdigest()[:16]
                conn.execute("INSERT OR REPLACE INTO visits VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                             (visit_id, visitor, device, customer, start, end, end, seq))
                conn.executemany("INSERT INTO sightings(ts, visitor, device, visit_id, x, y, accuracy_m, zone) "
                                 "VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                                 [(ts, visitor, device, visit_id, x, y, zone) for ts, zone, x, y in visit])
                result.visits += 1
                result.rows += len(visit)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


def _split(rows: list[tuple], gap_s: float) -> list[list[tuple]]:
    visits: list[list[tuple]] = []
    for row in rows:
        if visits and row[0] - visits[-1][-1][0] < gap_s:
            visits[-1].append(row)
        else:
            visits.append([row])
    return visits
