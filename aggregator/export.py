"""Raw rows out of the aggregator's database, streamed: visits, sightings or customer-tier events.

A data person wants every row, in a file their tools read (CSV, JSON lines, Parquet), without the
export holding a store's year of sightings in memory. Rows are read in batches from a read-only
connection (safe while the aggregator runs) and each batch is written at once: a CSV or JSON-lines
chunk, or one Parquet row group. Memory is bounded by the batch size, not the table.

The columns are the stored ones, unchanged: times in epoch seconds (``*_ts``, UTC), positions in plan
pixels, ids as stored (device ids are already keyed hashes; no MAC address is in the database).
docs/DATA.md documents each column.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from agent.errors import FloorwalkerError

BATCH_ROWS = 50_000  # one Parquet row group; ~10 MB of Python rows for sightings, far below a Pi's RAM
FORMATS = ("csv", "jsonl", "parquet")


class ExportError(FloorwalkerError, ValueError):
    """An export that cannot be made: a bad date, a file that is not a Floorwalker database."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str  # "text", "real", "integer" or "bool": the Parquet type and the JSON rendering
    doc: str


@dataclass(frozen=True, slots=True)
class Dataset:
    """One exportable table: its columns in order, the time column ``--from``/``--to`` filter on, the order."""

    table: str
    columns: tuple[Column, ...]
    time_column: str
    order_by: str
    doc: str


DATASETS: dict[str, Dataset] = {
    "visits": Dataset("visits", (
        Column("visit_id", "text", "unique id of the visit"),
        Column("visitor", "text", "the shopper: a loyalty customer id, else the hashed device id"),
        Column("device", "text", "hashed device id (HMAC of the MAC address with the store secret)"),
        Column("customer_id", "text", "loyalty customer id when the device is linked to one, else empty"),
        Column("start_ts", "real", "first seen in the store, epoch seconds UTC"),
        Column("end_ts", "real", "left the store, epoch seconds UTC; empty while the visit is open"),
        Column("last_seen_ts", "real", "last report of the device, epoch seconds UTC"),
        Column("passerby", "bool", "true when the visit was too short to count as a visitor"),
    ), "start_ts", "start_ts, visit_id", "store visits, one row per visit, by start time"),
    "sightings": Dataset("sightings", (
        Column("id", "integer", "row id, increasing"),
        Column("ts", "real", "time of the position fix, epoch seconds UTC"),
        Column("visitor", "text", "the shopper, as in visits"),
        Column("device", "text", "hashed device id"),
        Column("visit_id", "text", "the visit this fix belongs to"),
        Column("x", "real", "plan x in pixels (store.toml's plan)"),
        Column("y", "real", "plan y in pixels"),
        Column("accuracy_m", "real", "estimated position error in metres"),
        Column("zone", "text", "zone name from store.toml, empty outside every zone"),
    ), "ts", "ts, id", "fused positions, one row per fix, by time"),
    "events": Dataset("customer_events", (
        Column("id", "integer", "event id, increasing (the order they were published in)"),
        Column("ts", "real", "time of the event, epoch seconds UTC"),
        Column("kind", "text", "enter, move, exit or browsing"),
        Column("visitor", "text", "the shopper id published on the customer tier"),
        Column("x", "integer", "plan x in pixels (move, browsing; enter when known), empty on exit"),
        Column("y", "integer", "plan y in pixels, as x"),
        Column("dep", "text", "department of the zone browsed (browsing), else empty"),
    ), "ts", "id", "customer-tier events as published on MQTT (customer/enter, move, exit, browsing), by id"),
}


def parse_bound(raw: str, *, end: bool) -> float:
    """``--from``/``--to`` as epoch seconds: a date YYYY-MM-DD or an ISO 8601 time; UTC unless it has an offset.

    A plain date as ``--to`` means the whole of that day (up to the next midnight).
    """
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return (start + timedelta(days=1) if end else start).timestamp()
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ExportError(f"a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM[:SS][+HH:MM], got {raw!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True, slots=True)
class Selection:
    """What to export: which dataset, between which times (epoch seconds, ``until`` exclusive)."""

    dataset: Dataset
    since_s: float | None = None
    until_s: float | None = None

    def where(self) -> tuple[str, tuple[float, ...]]:
        clauses, params = [], []
        if self.since_s is not None:
            clauses.append(f"{self.dataset.time_column} >= ?")
            params.append(self.since_s)
        if self.until_s is not None:
            clauses.append(f"{self.dataset.time_column} < ?")
            params.append(self.until_s)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", tuple(params)


def open_readonly(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """The database read-only (the aggregator may be writing it); a missing file is an error, not a new file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such database file")
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def check_table(conn: sqlite3.Connection, dataset: Dataset) -> None:
    """The table and every exported column exist, or one line saying this is not a Floorwalker database."""
    found = {row[1] for row in conn.execute(f"PRAGMA table_info({dataset.table})")}
    missing = [c.name for c in dataset.columns if c.name not in found]
    if missing:
        what = f"no {dataset.table} table" if not found else f"no column {', '.join(missing)} in {dataset.table}"
        raise ExportError(f"{what}: is it a Floorwalker database?")


def count_rows(conn: sqlite3.Connection, sel: Selection) -> int:
    where, params = sel.where()
    return int(conn.execute(f"SELECT COUNT(*) FROM {sel.dataset.table}{where}", params).fetchone()[0])


def iter_batches(conn: sqlite3.Connection, sel: Selection,
                 batch_rows: int = BATCH_ROWS) -> Iterator[list[tuple[Any, ...]]]:
    """The selected rows in order, ``batch_rows`` at a time, from one read transaction (a consistent snapshot)."""
    names = ", ".join(c.name for c in sel.dataset.columns)
    where, params = sel.where()
    cursor = conn.execute(f"SELECT {names} FROM {sel.dataset.table}{where} ORDER BY {sel.dataset.order_by}", params)
    while batch := cursor.fetchmany(batch_rows):
        yield batch


# ----------------------------------------------------------------------------- writers, one per format


class _CsvWriter:
    def __init__(self, out: IO[bytes], columns: tuple[Column, ...]) -> None:
        self._out = out
        self._bools = [i for i, c in enumerate(columns) if c.kind == "bool"]
        self._write([tuple(c.name for c in columns)])

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        self._out.write(text.getvalue().encode("utf-8"))

    def write(self, batch: list[tuple[Any, ...]]) -> None:
        if self._bools:
            batch = [_with_bools(row, self._bools, lambda v: "true" if v else "false") for row in batch]
        self._write(batch)

    def close(self) -> None:
        pass


class _JsonlWriter:
    def __init__(self, out: IO[bytes], columns: tuple[Column, ...]) -> None:
        self._out = out
        self._names = tuple(c.name for c in columns)
        self._bools = [i for i, c in enumerate(columns) if c.kind == "bool"]

    def write(self, batch: list[tuple[Any, ...]]) -> None:
        names, bools = self._names, self._bools
        self._out.write(b"".join(orjson.dumps(dict(zip(names, _with_bools(row, bools, bool) if bools else row,
                                                            strict=True))) + b"\n" for row in batch))

    def close(self) -> None:
        pass


class _ParquetWriter:
    """One row group per batch, so a reader can also stream the file back."""

    def __init__(self, out: IO[bytes], columns: tuple[Column, ...]) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ExportError("Parquet needs pyarrow: pip install 'floorwalker[export]' (or pyarrow)") from None
        types = {"text": pa.string(), "real": pa.float64(), "integer": pa.int64(), "bool": pa.bool_()}
        self._pa = pa
        self._schema = pa.schema([pa.field(c.name, types[c.kind], nullable=True) for c in columns])
        self._bools = [c.kind == "bool" for c in columns]
        self._writer = pq.ParquetWriter(out, self._schema, compression="zstd")

    def write(self, batch: list[tuple[Any, ...]]) -> None:
        columns = list(zip(*batch, strict=True))  # rows -> columns in C, one tuple per column
        arrays = [self._pa.array([None if v is None else bool(v) for v in values] if is_bool else values,
                                 type=field.type)
                  for values, field, is_bool in zip(columns, self._schema, self._bools, strict=True)]
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self._schema), row_group_size=len(batch))

    def close(self) -> None:
        self._writer.close()


WRITERS: dict[str, Callable[[IO[bytes], tuple[Column, ...]], Any]] = {
    "csv": _CsvWriter, "jsonl": _JsonlWriter, "parquet": _ParquetWriter}


def _with_bools(row: tuple[Any, ...], indexes: list[int], render: Callable[[Any], Any]) -> tuple[Any, ...]:
    """SQLite stores booleans as 0/1: render them as the format's own true/false (NULL stays empty)."""
    values = list(row)
    for i in indexes:
        if values[i] is not None:
            values[i] = render(values[i])
    return tuple(values)


def export(conn: sqlite3.Connection, sel: Selection, fmt: str, out: IO[bytes], *,
           progress: Callable[[int], None] | None = None, batch_rows: int = BATCH_ROWS) -> int:
    """Write the selected rows to ``out`` in ``fmt``; returns the number of rows written."""
    writer = WRITERS[fmt](out, sel.dataset.columns)
    rows = 0
    try:
        for batch in iter_batches(conn, sel, batch_rows):
            writer.write(batch)
            rows += len(batch)
            if progress is not None:
                progress(len(batch))
    finally:
        writer.close()
    return rows
