"""SQLite persistence for offers: sequences in progress, fired offers, the transition log.

Three tables in the aggregator's database (their schema is the core's, aggregator/store.py):
- ``offer_state(shopper, snapshot, updated_ts)``: one JSON snapshot per shopper with something in
  progress, so a restart resumes sequences (written from :meth:`OfferEngine.take_changes`);
- ``offers(id, ts, shopper, customer_id, rule, offer, department, coupon_id, prediction)``;
- ``offer_log(id, ts, line)``: seed-001-style lines, trimmed to the newest ``max_log_rows``.

Writes go through the aggregator's single writer (:class:`aggregator.store.Store`) as one batch,
so they take the checkpointer's lock like every other write, and ``write`` awaits the commit on
the caller's event loop (:meth:`Store.commit`'s future: no thread waits for it). Reads use a
read-only connection of our own and block: the aiohttp layer calls them (and the constructor)
from one worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from aggregator.sqlite_writer import connect
from aggregator.store import Batch, Store

COMMIT_TIMEOUT_S = 60.0  # the writer retries a failing commit every second; past this the caller hears of it


def offer_batch(*, states: list[tuple[str, dict[str, Any] | None]], offers: list[dict[str, Any]],
                log_lines: list[tuple[float, str]], now_ts: float, max_log_rows: int) -> Batch:
    """The rows one batch of events produced, for the writer to commit in one transaction: each
    changed shopper's snapshot (None: nothing left in progress), the offers fired, the log lines
    and how many of them to keep."""
    batch = Batch()
    batch.offer_state = [(u, None if s is None else json.dumps(s, separators=(",", ":")), now_ts) for u, s in states]
    batch.offers = [(o["ts"], o["shopper"], o["customer_id"], o["rule"], o["offer"], o["department"],
                     o["coupon_id"], json.dumps(o["prediction"]) if o.get("prediction") else None) for o in offers]
    if log_lines:
        batch.offer_log = [(float(ts), line) for ts, line in log_lines]
        batch.offer_log_keep = [(max_log_rows,)]
    return batch


class OfferStore:
    """The offers' tables: ``write`` through ``writer`` (a store of its own, opened here, when none is
    given), reads on a read-only connection."""

    def __init__(self, path: Path | str, *, writer: Store | None = None, max_log_rows: int = 10_000) -> None:
        self.path = Path(path)
        self.max_log_rows = max_log_rows
        self._own_writer = writer is None
        if writer is None:
            writer = Store(self.path, retention_days=0)
            writer.open()  # creates the schema, ours included
        self.writer = writer
        self._lock = threading.Lock()
        try:
            self._conn: sqlite3.Connection = connect(str(self.path), readonly=True)
        except BaseException:
            self._close_writer()
            raise
        self._conn.row_factory = sqlite3.Row

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self._close_writer()

    def _close_writer(self) -> None:
        if self._own_writer:
            self.writer.close()

    def load_states(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute("SELECT shopper, snapshot FROM offer_state").fetchall()
        return [(r["shopper"], json.loads(r["snapshot"])) for r in rows]

    async def write(self, *, states: list[tuple[str, dict[str, Any] | None]], offers: list[dict[str, Any]],
                    log_lines: list[tuple[float, str]], now_ts: float) -> None:
        """Hand everything one batch of events produced to the writer; return once it is committed."""
        batch = offer_batch(states=states, offers=offers, log_lines=log_lines, now_ts=now_ts,
                            max_log_rows=self.max_log_rows)
        if not batch.rows():
            return
        try:
            await asyncio.wait_for(self.writer.commit(batch), COMMIT_TIMEOUT_S)
        except TimeoutError:
            raise TimeoutError(f"the writer did not commit the offers' rows in {COMMIT_TIMEOUT_S:g} s") from None

    def offers(self, *, limit: int = 100, customer_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM offers"
        params: list[Any] = []
        if customer_id is not None:
            sql += " WHERE customer_id = ?"
            params.append(customer_id)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = [dict(r) for r in self._conn.execute(sql, params)]
        for r in rows:
            r["prediction"] = json.loads(r["prediction"]) if r["prediction"] else None
        return rows

    def log(self, *, limit: int = 200) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(
                "SELECT id, ts, line FROM offer_log ORDER BY id DESC LIMIT ?", (limit,))]
