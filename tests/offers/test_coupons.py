"""Coupon choice: department names normalised, type preference, the missing Sport department."""

from __future__ import annotations

import pytest

from agent.errors import ConfigError
from aggregator.offers.coupons import CouponBook, department_key
from aggregator.offers.rules import CouponPolicy
from tests.offers.helpers import COUPONS_FILE


@pytest.mark.parametrize(("names", "key"), [
    (["Women", "Women's", "women’s", " WOMEN "], "women"),
    (["Men", "Men's"], "men"),
    (["Boys", "Boy's", "Boy"], "boy"),
    (["Girls", "Girl's"], "girl"),
    (["Sport", "Sports", "Sport's"], "sport"),
])
def test_department_names_are_normalised(names, key):
    assert {department_key(n) for n in names} == {key}


@pytest.fixture(scope="module")
def book() -> CouponBook:
    return CouponBook.load(COUPONS_FILE)


@pytest.mark.parametrize(("zone_dep", "department"), [("Women's", "Women"), ("Men", "Men"), ("Boy's", "Boys"),
                                                      ("Girl's", "Girls")])
def test_zone_department_picks_that_departments_coupon(book, zone_dep, department):
    dep, coupon = book.pick(CouponPolicy(), zone_department=zone_dep, gender="F")
    assert dep == department and coupon is not None and coupon["department"] == department


def test_type_preference_picks_the_first_coupon_of_the_best_type(book):
    _, coupon = book.pick(CouponPolicy(types=("buy_all",)), zone_department="Women", gender="F")
    assert coupon["id"] == 15
    _, coupon = book.pick(CouponPolicy(types=("just_discount", "buy_more")), zone_department="Women", gender="F")
    assert coupon["id"] == 97
    _, coupon = book.pick(CouponPolicy(types=("nothing-like-it",)), zone_department="Women", gender="F")
    assert coupon["id"] == 14  # no preferred type: the file's first


@pytest.mark.parametrize(("gender", "department"), [("F", "Women"), ("M", "Men")])
def test_sport_has_no_coupons_so_the_gender_fallback_is_used(book, gender, department):
    assert book.coupons("Sports") == []
    dep, coupon = book.pick(CouponPolicy(), zone_department="Sport", gender=gender)
    assert dep == department and coupon["department"] == department


def test_no_zone_uses_the_gender_fallback(book):
    dep, coupon = book.pick(CouponPolicy(), zone_department=None, gender="M")
    assert dep == "Men" and coupon is not None


def test_no_coupon_anywhere_returns_none(book):
    dep, coupon = book.pick(CouponPolicy(fallback_by_gender={}), zone_department="Sport", gender="F")
    assert dep == "Sport" and coupon is None


@pytest.mark.parametrize("data", [{}, [{"department": 3}], [{"department": "Women", "coupons": [{"x": 1}]}]])
def test_bad_coupon_files_are_config_errors(data):
    with pytest.raises(ConfigError):
        CouponBook.parse(data)
