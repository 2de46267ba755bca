"""Fixtures for the chain tests: real store databases from the generator, real (tmpfs) filesystems."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import orjson
import pytest

from agent.config import ChainShipping, StoreConfig, load_store
from aggregator.analytics.generator import generate
from aggregator.analytics.schema import connect, ensure_core_tables
from tests.conftest import CONFIG_DIR

CHAIN_KEY = "test-chain-key-0123456789"
END_DAY = date(2026, 3, 10)
CUSTOMERS = ["cust-101", "cust-102", "cust-103"]  # loyalty customers: the same people in every store


@pytest.fixture(scope="session")
def store_config() -> StoreConfig:
    return load_store(CONFIG_DIR / "store.toml")


def make_store_db(path: Path, store: StoreConfig, *, days: int = 2, visits_per_day: int = 120, seed: int = 1,
                  end_day: date = END_DAY) -> Path:
    """A store database with ``days`` of generated traffic (every visit closed)."""
    conn = connect(path)
    try:
        ensure_core_tables(conn)
        generate(conn, plan=store.plan, entrance=store.entrance, timezone=store.timezone, days=days,
                 visits_per_day=visits_per_day, seed=seed, end_day=end_day, customer_ids=CUSTOMERS)
    finally:
        conn.close()
    return path


@pytest.fixture
def store_db(tmp_path: Path, store_config: StoreConfig) -> Path:
    return make_store_db(tmp_path / "store.db", store_config)


def shipping(directory: Path, batch_rows: int = 20_000) -> ChainShipping:
    return ChainShipping(directory=directory, key=CHAIN_KEY, interval_s=0.1, batch_rows=batch_rows)


def visible_files(root: Path) -> dict[str, bytes]:
    """Every file Flink would read (not hidden), by path relative to ``root``."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jsonl"))
            if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)}


def read_rows(root: Path, kind: str) -> list[dict]:
    rows: list[dict] = []
    for p in sorted((root / kind).rglob("part-*.jsonl")):
        rows.extend(orjson.loads(line) for line in p.read_bytes().splitlines())
    return rows


@contextlib.contextmanager
def tmpfs(path: Path, *, size_kb: int, read_only: bool = False) -> Iterator[Path]:
    """A real small filesystem at ``path`` (needs root, which CI has): full disks and read-only mounts."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size_kb}k" + (",ro" if read_only else "")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        message = f"cannot mount a tmpfs (needs root): {result.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)
