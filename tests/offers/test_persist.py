"""Sequences in progress survive a restart through the SQLite file; offers and the log are kept."""

from __future__ import annotations

from aggregator.offers.coupons import CouponBook
from aggregator.offers.persist import OfferStore
from aggregator.offers.service import OfferService
from tests.offers.helpers import COUPONS_FILE, click, default_rules


def flush(service: OfferService, store: OfferStore, fired) -> None:
    store.write(states=service.engine.take_changes(), offers=[f.row() for f in fired],
                log_lines=service.pending_log, now_ts=0.0)
    service.pending_log = []


def test_a_sequence_in_progress_survives_a_restart(sqlite_path):
    store = OfferStore(sqlite_path)
    try:
        first = OfferService(default_rules(), CouponBook.load(COUPONS_FILE))
        for row in [click(0, "Women's", "clothing", zone="Women's", department="Women"),
                    click(60, "Sport", "shoes", zone="Sport", department="Sport")]:
            flush(first, store, first.handle(row, customer_id="7"))
    finally:
        store.close()
    store = OfferStore(sqlite_path)
    try:
        second = OfferService(default_rules(), CouponBook.load(COUPONS_FILE))
        assert second.engine.restore(store.load_states()) == 1
        assert second.engine.state_of("u1") == "shoes_visited"
        fired = second.handle(click(120, "Men's", "clothing", zone="Men's", department="Men"), customer_id="7")
        flush(second, store, fired)
        assert store.load_states() == []  # the offer reset the shopper: nothing left in progress
        (offer,) = store.offers()
        assert (offer["customer_id"], offer["offer"], offer["department"], offer["coupon_id"]) == (
            "7", "offer2", "Men", 835)
        assert offer["prediction"]["customer"] == {"id": "7"} and offer["prediction"]["coupon"]["id"] == 835
        lines = [r["line"] for r in store.log()]
        assert lines[0] == "[User u1 triggered offer offer2]" and len(lines) == 4
    finally:
        store.close()


def test_the_log_table_is_bounded(sqlite_path):
    store = OfferStore(sqlite_path, max_log_rows=5)
    try:
        for i in range(4):
            store.write(states=[], offers=[], log_lines=[(float(i), f"a{i}"), (float(i), f"b{i}")], now_ts=0.0)
        rows = store.log(limit=100)
        assert [r["line"] for r in rows] == ["b3", "a3", "b2", "a2", "b1"]
    finally:
        store.close()
