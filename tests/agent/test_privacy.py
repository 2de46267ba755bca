"""Keyed device ids: stable per store secret, different across secrets and (when rotating) days."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agent.privacy import DeviceHasher, is_randomized

SECRET = "a-real-store-secret-0123456789"
MAC = "a4:83:e7:12:34:56"


def test_same_secret_same_id_across_agents() -> None:
    assert DeviceHasher(SECRET).device_id(MAC) == DeviceHasher(SECRET).device_id(MAC)


def test_id_shape_and_no_mac_inside() -> None:
    device = DeviceHasher(SECRET).device_id(MAC)
    assert device.startswith("d-") and len(device) == 18
    assert "a483e7" not in device and "123456" not in device


def test_other_secret_other_id() -> None:
    assert DeviceHasher(SECRET).device_id(MAC) != DeviceHasher(SECRET + "x").device_id(MAC)


def test_daily_rotation_changes_at_local_midnight() -> None:
    tz = ZoneInfo("Europe/Warsaw")
    hasher = DeviceHasher(SECRET, rotate_daily=True, timezone="Europe/Warsaw")
    before = datetime(2026, 3, 28, 23, 59, 59, tzinfo=tz).timestamp()
    morning = datetime(2026, 3, 29, 8, 0, tzinfo=tz).timestamp()  # across a DST change too
    evening = datetime(2026, 3, 29, 23, 0, tzinfo=tz).timestamp()
    a, b, c = hasher.device_id(MAC, before), hasher.device_id(MAC, morning), hasher.device_id(MAC, evening)
    assert a != b and b == c
    assert hasher.device_id(MAC, before) == a  # going back a day gives that day's id again


def test_without_rotation_days_do_not_matter() -> None:
    hasher = DeviceHasher(SECRET)
    assert hasher.device_id(MAC, 0.0) == hasher.device_id(MAC, 1e9)


@pytest.mark.parametrize("mac, randomized", [
    ("a4:83:e7:12:34:56", False), ("02:00:00:00:00:01", True), ("da:a1:19:00:00:01", True),
    ("f6:00:00:00:00:01", True), ("00:00:00:00:00:01", False), ("fc:00:00:00:00:01", False),
])
def test_randomized_flag(mac: str, randomized: bool) -> None:
    assert is_randomized(mac) is randomized
