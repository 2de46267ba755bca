"""The log-distance fit recovers the model it was made from, and refuses tables it cannot use."""

from __future__ import annotations

import pytest

from agent.config import CalibrationPoint
from agent.errors import BadCalibration
from agent.positioning.calibration import LogDistanceModel


def table(rssi_at_1m: float, n: float) -> list[CalibrationPoint]:
    model = LogDistanceModel(rssi_at_1m, n)
    return [CalibrationPoint(d, model.rssi_at(d)) for d in (1, 2, 4, 8)]


@pytest.mark.parametrize(("rssi_at_1m", "n"), [(-59, 3.0), (-41, 2.2), (-45, 3.5)])
def test_fit_recovers_the_model(rssi_at_1m: float, n: float) -> None:
    model = LogDistanceModel.fit(table(rssi_at_1m, n))
    assert model.rssi_at_1m == pytest.approx(rssi_at_1m)
    assert model.n == pytest.approx(n)
    assert model.distance_m(model.rssi_at(5.0)) == pytest.approx(5.0)


def test_distance_is_floored() -> None:
    assert LogDistanceModel(-59, 3.0).distance_m(-10) == 0.1


def test_rising_table_refused() -> None:
    with pytest.raises(BadCalibration):
        LogDistanceModel.fit([CalibrationPoint(1, -70), CalibrationPoint(8, -40)])
