"""The Flink job's results (JSON lines under ``<out>/daily`` and ``<out>/zones``), read for the API.

Flink names its part files itself; hidden and in-progress ones (``.`` or ``_`` first) are skipped,
as Flink's own readers do. Rows that do not parse are counted, not fatal: a half-copied results
directory must not take the chain page down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)
CHAIN = "*"  # the store value of chain-wide rows
Row = dict[str, Any]


@dataclass
class Results:
    daily: list[Row] = field(default_factory=list)
    zones: list[Row] = field(default_factory=list)
    bad_rows: int = 0


def _read(directory: Path, results: Results) -> list[Row]:
    rows: list[Row] = []
    if not directory.is_dir():
        return rows
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or any(p.startswith((".", "_")) for p in path.relative_to(directory).parts):
            continue
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                results.bad_rows += 1
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                results.bad_rows += 1
    return rows


def load(out_dir: Path) -> Results:
    """Every result row under ``out_dir``, sorted by date and store (blocking: call in an executor)."""
    results = Results()
    results.daily = sorted(_read(out_dir / "daily", results), key=lambda r: (str(r.get("date")), str(r.get("store"))))
    results.zones = sorted(_read(out_dir / "zones", results),
                           key=lambda r: (str(r.get("date")), str(r.get("store")), r.get("rank") or 0))
    if results.bad_rows:
        log.warning("event=chain-results-bad-rows count=%d dir=%s", results.bad_rows, out_dir)
    return results


def in_range(rows: list[Row], first: str | None, last: str | None) -> list[Row]:
    return [r for r in rows if (first is None or str(r.get("date")) >= first) and
            (last is None or str(r.get("date")) <= last)]
