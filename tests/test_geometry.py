"""Plan geometry: inclusive edges, first declared zone wins, unit conversion."""

from __future__ import annotations

import pytest

from agent.geometry import Plan, Zone, distance, point_in_polygon, polygon_area

SQUARE = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))
L_SHAPE = ((0.0, 0.0), (10.0, 0.0), (10.0, 4.0), (4.0, 4.0), (4.0, 10.0), (0.0, 10.0))


@pytest.mark.parametrize(("point", "inside"), [
    ((5, 5), True), ((0, 0), True), ((10, 10), True), ((10, 5), True), ((5, 0), True),
    ((10.001, 5), False), ((-0.1, 5), False), ((5, 10.5), False),
])
def test_square_edges_are_inclusive(point: tuple[float, float], inside: bool) -> None:
    assert point_in_polygon(point, SQUARE) is inside


@pytest.mark.parametrize(("point", "inside"), [((2, 8), True), ((8, 2), True), ((8, 8), False), ((4, 7), True)])
def test_concave_polygon(point: tuple[float, float], inside: bool) -> None:
    assert point_in_polygon(point, L_SHAPE) is inside


def test_first_declared_zone_wins_on_shared_edge() -> None:
    a = Zone("A", "clothing", ((0, 0), (5, 0), (5, 5), (0, 5)))
    b = Zone("B", "sport", ((5, 0), (10, 0), (10, 5), (5, 5)))
    plan = Plan(10, 5, 0.1, (a, b))
    assert plan.zone_at((5, 2)).name == "A"
    assert Plan(10, 5, 0.1, (b, a)).zone_at((5, 2)).name == "B"
    assert plan.zone_at((7, 2)).name == "B"
    assert plan.zone_at((11, 2)) is None


def test_seed000_zones(config_dir) -> None:
    from agent.config import load_store

    plan = load_store(config_dir / "store.toml").plan
    assert plan.zone_at((445, 443)).name == "Women's"
    assert plan.zone_at((669, 500)) is None  # the aisle between Women's and Boy's
    assert plan.zone_at((1318, 879)).name == "Men's"
    assert plan.zone_at((900, 1100)).name == "Sport"
    assert plan.zone_at((937, 50)) is None


def test_unit_conversion_round_trips() -> None:
    plan = Plan(1808, 1315, 0.02)
    assert plan.px_to_m((1808, 1315)) == pytest.approx((36.16, 26.3))
    assert plan.m_to_px(plan.px_to_m((123.0, 456.0))) == pytest.approx((123.0, 456.0))
    assert plan.length_m_to_px(1.0) == pytest.approx(50.0)
    assert plan.clamp((-5, 2000)) == (0.0, 1315.0)


def test_distance_and_area() -> None:
    assert distance((0, 0), (3, 4)) == 5
    assert polygon_area(SQUARE) == 100
    assert polygon_area(((0, 0), (1, 1), (2, 2))) == 0
