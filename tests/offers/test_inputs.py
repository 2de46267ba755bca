"""Seed-001 rows and store browsing events as engine clicks."""

from __future__ import annotations

import math

import pytest

from aggregator.events import ShopperEvent
from aggregator.offers.engine import NS_PER_S
from aggregator.offers.inputs import BadRow, click_from_browsing, click_from_row
from aggregator.offers.rules import StoreMapping

ROW = {"timestamp": 1700222069000000000, "userId": "sad-music-boxing", "productId": "VD55129406",
       "category": "clothing", "gender": "F", "age": 30}


def test_a_seed_row_becomes_a_click():
    c = click_from_row(ROW)
    assert (c.ts_ns, c.user, c.item, c.category, c.gender, c.age) == (
        1700222069000000000, "sad-music-boxing", "VD55129406", "clothing", "F", 30)


@pytest.mark.parametrize(("field", "value", "expect"), [
    ("gender", None, None), ("gender", math.nan, None), ("gender", "", None), ("gender", "m", "M"),
    ("age", None, None), ("age", math.nan, None), ("age", "31", 31), ("age", 31.0, 31), ("age", "old", None),
    ("age", True, None),
])
def test_missing_gender_or_age_become_none(field, value, expect):
    c = click_from_row({**ROW, field: value})
    assert getattr(c, field) == expect


@pytest.mark.parametrize(("row", "reason"), [
    ([1, 2], "not-an-object"), ({**ROW, "timestamp": "soon"}, "bad-timestamp"),
    ({**ROW, "timestamp": -1}, "bad-timestamp"), ({**ROW, "timestamp": None}, "bad-timestamp"),
    ({**ROW, "userId": None}, "no-user"), ({**ROW, "productId": ""}, "no-product"),
])
def test_unusable_rows_are_bad_rows(row, reason):
    with pytest.raises(BadRow) as err:
        click_from_row(row)
    assert err.value.reason == reason


CUSTOMERS = {"7": {"customer_id": 7, "gender": "F", "age": 30}, "8": {"customer_id": 8, "name": "no data"}}


def browsing(customer_id, *, zone="Sport", category="sport", x=700.0, y=1000.0):
    return ShopperEvent("browsing", 1000.5, visitor=str(customer_id or "dev-1"), device="dev-1",
                        customer_id=customer_id, x=x, y=y, zone=zone, dep=zone, category=category)


def test_browsing_by_a_linked_customer_carries_gender_age_and_mapped_category():
    c = click_from_browsing(browsing("7"), CUSTOMERS, StoreMapping())
    assert (c.ts_ns, c.user, c.item, c.category, c.gender, c.age, c.zone) == (
        round(1000.5 * NS_PER_S), "7", "Sport", "shoes", "F", 30, "Sport")


@pytest.mark.parametrize("customer_id", [None, "8", "999"])
def test_anonymous_or_unknown_customers_have_no_gender_or_age(customer_id):
    c = click_from_browsing(browsing(customer_id), CUSTOMERS, StoreMapping())
    assert c.gender is None and c.age is None


def test_cell_items_split_a_zone_into_fixture_cells():
    mapping = StoreMapping(item="cell", cell_px=100)
    a = click_from_browsing(browsing("7", x=610, y=1000), CUSTOMERS, mapping)
    b = click_from_browsing(browsing("7", x=890, y=1000), CUSTOMERS, mapping)
    assert a.item == "Sport#6,10" and b.item == "Sport#8,10"


def test_browsing_without_a_zone_is_not_a_click():
    assert click_from_browsing(browsing("7", zone=None), CUSTOMERS, StoreMapping()) is None
