"""Fixtures for the analytics tests: a real SQLite file with the aggregator's core tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.analytics.schema import connect, ensure_core_tables


@pytest.fixture
def core_db(sqlite_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a fresh database file holding the core tables (sightings, visits, ...)."""
    conn = connect(sqlite_path)
    ensure_core_tables(conn)
    yield conn
    conn.close()
