"""Fixtures and neighbours learned from what the sniffers hear."""

from __future__ import annotations

from agent.device_kinds import FIXTURE, NEIGHBOUR, PERSON, DeviceKinds


def test_a_device_heard_only_weakly_is_a_neighbour_until_it_comes_closer() -> None:
    kinds = DeviceKinds(floor_dbm=-70)
    assert [kinds.observe(t, "d-next-door", "s1", -88) for t in range(5)] == [NEIGHBOUR] * 5
    for t in range(5, 15):  # walks in: the smoothed RSSI rises above the floor
        kind = kinds.observe(t, "d-next-door", "s1", -50)
    assert kind == PERSON
    assert kinds.observe(0, "d-in-room", "s1", -55) == PERSON


def test_the_floor_is_per_sniffer_and_any_sniffer_above_it_makes_a_person() -> None:
    kinds = DeviceKinds(floor_dbm=-70, floors_dbm={"by-the-wall": -60})
    assert kinds.observe(0, "d-1", "by-the-wall", -65) == NEIGHBOUR
    assert kinds.observe(1, "d-1", "centre", -68) == PERSON


def test_a_device_heard_for_hours_without_leaving_becomes_a_fixture_and_stays_one() -> None:
    kinds = DeviceKinds(fixture_after_s=6 * 3600, fixture_gap_s=3600)
    for minute in range(0, 6 * 60, 10):
        assert kinds.observe(minute * 60.0, "d-printer", "s1", -50) == PERSON
    assert kinds.observe(6 * 3600.0, "d-printer", "s1", -50) == FIXTURE
    assert kinds.observe(30 * 3600.0, "d-printer", "s1", -50) == FIXTURE  # the next day too
    assert kinds.stats["fixtures_learned"] == 1


def test_a_device_that_leaves_for_longer_than_the_gap_starts_again() -> None:
    kinds = DeviceKinds(fixture_after_s=6 * 3600, fixture_gap_s=3600)
    for hour in (0, 3, 6, 9):  # heard every 3 h: each time a new run
        assert kinds.observe(hour * 3600.0, "d-staff", "s1", -50) == PERSON


def test_memory_is_bounded() -> None:
    kinds = DeviceKinds(max_devices=100, max_fixtures=10, fixture_after_s=10, fixture_gap_s=100)
    for i in range(1000):
        kinds.observe(0.0, f"d-{i}", "s1", -50)
        kinds.observe(20.0, f"d-{i}", "s1", -50)
    assert len(kinds.fixtures) == 10 and kinds.stats["fixtures_learned"] == 1000
    assert kinds.kind("d-0") == PERSON and kinds.kind("d-999") == FIXTURE
