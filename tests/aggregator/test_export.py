"""``floorwalker-aggregator export``: every row out, equal to the database row for row, read back independently."""

from __future__ import annotations

import csv
import json
import os
import pty
import random
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from aggregator.cli import main
from aggregator.export import BATCH_ROWS, DATASETS
from aggregator.store import create_schema
from tests.conftest import REPO

DAY_S = 86_400.0
START_S = datetime(2026, 11, 1, tzinfo=UTC).timestamp()  # 100k visits spread over the 30 days after it
N_VISITS = 100_000


def _fill(path: Path, n_visits: int) -> None:
    """A real database in the aggregator's own schema, with the awkward values real data has."""
    create_schema(path)
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO visits (visit_id, visitor, device, customer_id, start_ts, end_ts, last_seen_ts, passerby, "
            "seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((f"v{i:06d}", f"c-{i % 977}" if i % 5 == 0 else f"d-{i:08x}", f"d-{i:08x}",
              f"{i % 977}" if i % 5 == 0 else None, START_S + i * 25.92 + rng.random(),
              None if i % 1000 == 999 else START_S + i * 25.92 + 60 + rng.random() * 3600,
              START_S + i * 25.92 + 61.5, i % 7 == 0, i) for i in range(n_visits)))
        conn.executemany(
            "INSERT INTO sightings (ts, visitor, device, visit_id, x, y, accuracy_m, zone) VALUES (?,?,?,?,?,?,?,?)",
            ((START_S + i * 60.0, f"d-{i % 300:08x}", f"d-{i % 300:08x}", f"v{i % 300:06d}", rng.uniform(0, 1808),
              rng.uniform(0, 1315), rng.uniform(0.3, 4.0), None if i % 11 == 0 else "Women's, \"new\"")
             for i in range(5000)))
        conn.executemany(
            "INSERT INTO customer_events (ts, kind, visitor, x, y, dep) VALUES (?,?,?,?,?,?)",
            ((START_S + i * 150.0, ("enter", "move", "exit", "browsing")[i % 4], f"d-{i % 50:08x}",
              None if i % 4 >= 2 else i % 1808, None if i % 4 >= 2 else i % 1315, "Sport" if i % 4 == 3 else None)
             for i in range(3000)))
    conn.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "floorwalker.db"
    _fill(path, N_VISITS)
    return path


def _expected(db: Path, what: str, where: str = "", params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows straight from SQLite, booleans as booleans: what every format must give back."""
    dataset = DATASETS[what]
    names = [c.name for c in dataset.columns]
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"SELECT {', '.join(names)} FROM {dataset.table} {where} ORDER BY {dataset.order_by}",
                            params).fetchall()
    bools = [i for i, c in enumerate(dataset.columns) if c.kind == "bool"]
    return [tuple(bool(v) if i in bools and v is not None else v for i, v in enumerate(row)) for row in rows]


def _from_csv(path: Path, what: str) -> list[tuple[Any, ...]]:
    kinds = [c.kind for c in DATASETS[what].columns]
    convert = {"text": str, "real": float, "integer": int, "bool": lambda v: v == "true"}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        assert next(reader) == [c.name for c in DATASETS[what].columns]
        return [tuple(None if v == "" else convert[k](v) for k, v in zip(kinds, row, strict=True)) for row in reader]


def _from_jsonl(path: Path, what: str) -> list[tuple[Any, ...]]:
    names = [c.name for c in DATASETS[what].columns]
    with open(path, encoding="utf-8") as fh:
        return [tuple(json.loads(line)[n] for n in names) for line in fh]


def _from_parquet(path: Path, what: str) -> list[tuple[Any, ...]]:
    table = pq.read_table(path)  # pyarrow's reader, not our writer
    assert table.column_names == [c.name for c in DATASETS[what].columns]
    columns = [table.column(n).to_pylist() for n in table.column_names]
    return list(zip(*columns, strict=True))


READERS = {"csv": _from_csv, "jsonl": _from_jsonl, "parquet": _from_parquet}


def test_parquet_export_of_100k_visits_reads_back_equal_row_for_row(db: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "visits.parquet"
    assert main(["export", "--db", str(db), "--what", "visits", "--format", "parquet", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == N_VISITS
    expected = _expected(db, "visits")
    assert len(expected) == N_VISITS
    assert _from_parquet(out, "visits") == expected
    meta = pq.ParquetFile(out).metadata
    assert meta.num_row_groups == -(-N_VISITS // BATCH_ROWS)  # written a batch at a time, not all at once
    schema = pq.read_schema(out)
    assert str(schema.field("passerby").type) == "bool" and str(schema.field("start_ts").type) == "double"
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("what", ["visits", "sightings", "events"])
def test_every_dataset_in_every_format_is_the_database(db: Path, tmp_path: Path, what: str, fmt: str) -> None:
    out = tmp_path / f"{what}.{fmt}"
    window = ["--from", "2026-11-03", "--to", "2026-11-04"]  # two whole days, UTC
    assert main(["export", "--db", str(db), "--what", what, *window, "--out", str(out)]) == 0
    column = DATASETS[what].time_column
    expected = _expected(db, what, f"WHERE {column} >= ? AND {column} < ?",
                         (START_S + 2 * DAY_S, START_S + 4 * DAY_S))
    assert expected, "the window must hold rows for this test to mean anything"
    assert READERS[fmt](out, what) == expected


def test_without_dates_every_row_and_times_with_offsets(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.csv"
    assert main(["export", "--db", str(db), "--what", "events", "--out", str(out)]) == 0
    assert _from_csv(out, "events") == _expected(db, "events")
    # 01:00 at +01:00 is midnight UTC: the same first row as the plain date
    assert main(["export", "--db", str(db), "--what", "events", "--from", "2026-11-01T01:00:00+01:00",
                 "--to", "2026-11-01T00:10:00", "--out", str(out)]) == 0
    assert _from_csv(out, "events") == _expected(db, "events", "WHERE ts < ?", (START_S + 600,))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aggregator.cli", "export", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


@pytest.mark.parametrize(("args", "message"), [
    (["--what", "visits", "--from", "2026-13-01"], "--from: a date YYYY-MM-DD"),
    (["--what", "visits", "--to", "yesterday"], "--to: a date YYYY-MM-DD"),
    (["--what", "shoppers"], "--what: invalid choice: 'shoppers'"),
    (["--what", "visits", "--from", "2026-11-05", "--to", "2026-11-04"], "--from (2026-11-05) is not before --to"),
    (["--what", "visits", "--format", "xlsx"], "--format: invalid choice"),
])
def test_bad_options_are_one_clear_usage_error(db: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out.csv"
    result = _cli("--db", str(db), *args, "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_format_from_the_extension_or_an_error(db: Path, tmp_path: Path) -> None:
    result = _cli("--db", str(db), "--what", "visits", "--out", str(tmp_path / "visits.txt"))
    assert result.returncode == 2 and "--format: csv, jsonl or parquet" in result.stderr
    result = _cli("--db", str(db), "--what", "visits", "--out", str(tmp_path / "nope" / "visits.csv"))
    assert result.returncode == 2 and f"--out {tmp_path / 'nope' / 'visits.csv'}: no directory {tmp_path / 'nope'}" \
        in result.stderr and ".part" not in result.stderr


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: None, "no such database file"),
    (lambda p: sqlite3.connect(p).execute("CREATE TABLE t (a)").connection.commit(), "no visits table"),
])
def test_a_file_that_is_not_our_database_is_named(tmp_path: Path, make: Any, message: str) -> None:
    path = tmp_path / "other.db"
    make(path)
    result = _cli("--db", str(path), "--what", "visits", "--out", str(tmp_path / "v.csv"))
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "v.csv").exists() and not (tmp_path / "v.csv.part").exists()


def test_progress_bar_on_a_terminal_and_data_on_stdout(db: Path) -> None:
    parent, child = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "aggregator.cli", "export", "--db", str(db), "--what",
                                 "sightings", "--format", "jsonl", "--out", "-"], stdout=subprocess.PIPE,
                                stderr=child, timeout=60, cwd=REPO)
        os.close(child)
        child = -1
        bar = b""
        while True:
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # the pty's other end is closed: all read
                break
            if not chunk:
                break
            bar += chunk
    finally:
        if child >= 0:
            os.close(child)
        os.close(parent)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 5000
    assert b"export sightings [" in bar and b"100% 5,000/5,000 rows" in bar
