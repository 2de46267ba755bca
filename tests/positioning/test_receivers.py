"""From a named receiver's RSSI to an Anchor: unknown ids and bad readings are BadReading."""

from __future__ import annotations

import math

import pytest

from agent.errors import BadReading
from agent.positioning.calibration import LogDistanceModel
from agent.positioning.receivers import Receiver, anchor_for

MODEL = LogDistanceModel(-59.0, 3.0)
RECEIVERS = {"s1": Receiver("s1", 1.0, 2.0, MODEL, z_m=2.5)}


def test_anchor_carries_position_distance_and_sigma() -> None:
    a = anchor_for(RECEIVERS, "s1", MODEL.rssi_at(4.0))
    assert (a.x_m, a.y_m) == (1.0, 2.0)
    assert a.distance_m == pytest.approx(4.0)
    assert a.sigma_m == pytest.approx(MODEL.sigma_m(4.0))


def test_device_height_turns_slant_into_floor_distance() -> None:
    a = anchor_for(RECEIVERS, "s1", MODEL.rssi_at(math.hypot(3.0, 1.3)), device_height_m=1.2)
    assert a.distance_m == pytest.approx(3.0)


@pytest.mark.parametrize("rssi", [math.nan, math.inf, -math.inf, 40.0])
def test_bad_rssi_is_a_bad_reading(rssi: float) -> None:
    with pytest.raises(BadReading):
        anchor_for(RECEIVERS, "s1", rssi)


def test_unknown_receiver_is_a_bad_reading() -> None:
    with pytest.raises(BadReading, match="ghost"):
        anchor_for(RECEIVERS, "ghost", -60.0)
