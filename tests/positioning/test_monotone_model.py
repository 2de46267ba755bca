"""The monotone-interpolation calibration model: same methods as the log-distance fit."""

from __future__ import annotations

import pytest

from agent.config import CalibrationPoint
from agent.positioning.calibration import MonotoneModel


def test_monotone_model_passes_through_the_table_and_inverts() -> None:
    bent = [CalibrationPoint(1, -41), CalibrationPoint(2, -44), CalibrationPoint(4, -60), CalibrationPoint(8, -66)]
    model = MonotoneModel.fit(bent)
    for p in bent:
        assert model.rssi_at(p.distance_m) == pytest.approx(p.rssi_dbm)
        assert model.distance_m(p.rssi_dbm) == pytest.approx(p.distance_m)
    for d in (0.5, 1.5, 3.0, 6.0, 20.0):
        assert model.distance_m(model.rssi_at(d)) == pytest.approx(d)
    assert model.sigma_m(1.0) < model.sigma_m(8.0)


def test_monotone_model_pools_a_rising_table() -> None:
    model = MonotoneModel.fit([CalibrationPoint(1, -40), CalibrationPoint(2, -55), CalibrationPoint(4, -52),
                               CalibrationPoint(8, -70)])
    assert list(model.rssi) == sorted(model.rssi, reverse=True)
    assert model.distance_m(-50) < model.distance_m(-60) < model.distance_m(-75)
