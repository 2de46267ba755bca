"""Receivers by id: from one RSSI reading of a named receiver to an Anchor for multilateration.

Agents and the survey tool know receivers by id (a sniffer, an ESPresense node); the solver knows
positions and distances. This is the one place that joins them, so an unknown id, a NaN RSSI or a
slant distance shorter than the mounting height are rejected the same way everywhere (BadReading).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from agent.errors import BadReading
from agent.positioning.multilateration import Anchor
from agent.positioning.smoothing import check_rssi


class DistanceModel(Protocol):
    """What LogDistanceModel and MonotoneModel both offer."""

    def distance_m(self, rssi_dbm: float) -> float: ...

    def sigma_m(self, distance_m: float) -> float: ...


@dataclass(frozen=True, slots=True)
class Receiver:
    """A receiver at (x_m, y_m), mounted ``z_m`` up, with its calibration."""

    id: str
    x_m: float
    y_m: float
    model: DistanceModel
    z_m: float = 0.0


def anchor_for(receivers: Mapping[str, Receiver], receiver_id: str, rssi_dbm: float, *,
               device_height_m: float | None = None) -> Anchor:
    """The Anchor for one (smoothed) RSSI heard by ``receiver_id``.

    With ``device_height_m`` the slant distance becomes a floor distance using the receiver's
    height (a ceiling sniffer 2.5 m up hears a phone right below it at ~1.3 m, not 0 m).
    """
    receiver = receivers.get(receiver_id)
    if receiver is None:
        raise BadReading(f"receiver: one of the configured receivers, got {receiver_id!r}")
    rssi = check_rssi(rssi_dbm)
    d = receiver.model.distance_m(rssi)
    if device_height_m is not None:
        dz = receiver.z_m - device_height_m
        d = math.sqrt(max(d * d - dz * dz, 0.01))
    return Anchor(receiver.x_m, receiver.y_m, d, receiver.model.sigma_m(d))
