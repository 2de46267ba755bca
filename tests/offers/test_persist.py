"""Sequences in progress survive a restart through the SQLite file; offers and the log are kept."""

from __future__ import annotations

import io
import os
import sqlite3

from aggregator import sqlite_writer
from aggregator.child_process import read_frame, write_frame
from aggregator.offers.coupons import CouponBook
from aggregator.offers.persist import OfferStore, offer_batch
from aggregator.offers.service import OfferService
from aggregator.store import Store, create_schema
from tests.offers.helpers import COUPONS_FILE, click, default_rules


async def flush(service: OfferService, store: OfferStore, fired) -> None:
    await store.write(states=service.engine.take_changes(), offers=[f.row() for f in fired],
                log_lines=service.pending_log, now_ts=0.0)
    service.pending_log = []


async def test_a_sequence_in_progress_survives_a_restart(sqlite_path):
    store = OfferStore(sqlite_path)
    try:
        first = OfferService(default_rules(), CouponBook.load(COUPONS_FILE))
        for row in [click(0, "Women's", "clothing", zone="Women's", department="Women"),
                    click(60, "Sport", "shoes", zone="Sport", department="Sport")]:
            await flush(first, store, first.handle(row, customer_id="7"))
    finally:
        store.close()
    store = OfferStore(sqlite_path)
    try:
        second = OfferService(default_rules(), CouponBook.load(COUPONS_FILE))
        assert second.engine.restore(store.load_states()) == 1
        assert second.engine.state_of("u1") == "shoes_visited"
        fired = second.handle(click(120, "Men's", "clothing", zone="Men's", department="Men"), customer_id="7")
        await flush(second, store, fired)
        assert store.load_states() == []  # the offer reset the shopper: nothing left in progress
        (offer,) = store.offers()
        assert (offer["customer_id"], offer["offer"], offer["department"], offer["coupon_id"]) == (
            "7", "offer2", "Men", 835)
        assert offer["prediction"]["customer"] == {"id": "7"} and offer["prediction"]["coupon"]["id"] == 835
        lines = [r["line"] for r in store.log()]
        assert lines[0] == "[User u1 triggered offer offer2]" and len(lines) == 4
    finally:
        store.close()


async def test_the_log_table_is_bounded(sqlite_path):
    store = OfferStore(sqlite_path, max_log_rows=5)
    try:
        for i in range(4):
            await store.write(states=[], offers=[], log_lines=[(float(i), f"a{i}"), (float(i), f"b{i}")], now_ts=0.0)
        rows = store.log(limit=100)
        assert [r["line"] for r in rows] == ["b3", "a3", "b2", "a2", "b1"]
    finally:
        store.close()


async def test_offer_rows_go_through_the_single_writer(sqlite_path):
    """The offers' rows are a batch of the aggregator's writer (its checkpointer lock, its commits),
    awaited on the caller's loop (the writer here runs on a loop of its own: Store.open)."""
    writer = Store(sqlite_path)
    writer.open()
    store = OfferStore(sqlite_path, writer=writer)
    try:
        before = writer.stats.commits
        await store.write(states=[("u1", {"state": "a"})], offers=[], log_lines=[(1.0, "x")], now_ts=1.0)
        assert writer.stats.commits == before + 1
        assert store.load_states() == [("u1", {"state": "a"})]
    finally:
        store.close()
        writer.close()


def test_a_shoppers_last_change_wins_when_the_writer_merges_batches(sqlite_path):
    """The writer merges waiting batches into one transaction: a later batch's change of a shopper
    (gone, or back in progress) must win over an earlier one's, whichever way round."""
    create_schema(sqlite_path)
    store_batches = [
        {"states": [("u1", {"s": 1}), ("u2", None)], "offers": [], "log_lines": [], "now_ts": 1.0},
        {"states": [("u1", None), ("u2", {"s": 2})], "offers": [], "log_lines": [], "now_ts": 2.0},
    ]
    r, w = os.pipe()
    with os.fdopen(w, "wb") as inp:  # both batches wait in the pipe: the writer merges them
        for seq, kwargs in enumerate(store_batches):
            write_frame(inp, ("batch", seq, offer_batch(**kwargs, max_log_rows=10).tables(), []))
    out = io.BytesIO()
    with os.fdopen(r, "rb", buffering=0) as pipe:
        sqlite_writer.serve(pipe, out, str(sqlite_path), 0.0, 3600.0, 5000)
    out.seek(0)
    assert read_frame(out)[:2] == ("committed", [0, 1])  # one transaction for both
    conn = sqlite3.connect(sqlite_path)
    try:
        assert conn.execute("SELECT shopper, snapshot FROM offer_state").fetchall() == [("u2", '{"s":2}')]
    finally:
        conn.close()
