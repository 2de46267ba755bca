"""Distance from RSSI with a per-device calibration table (log-distance path-loss model).

The table is what an installer measures in the walk test: RSSI of a reference phone at known
distances (1, 2, 4, 8 m). We fit ``rssi = rssi_at_1m - 10 n log10(d)`` by least squares, the
standard indoor model (Rappaport, *Wireless Communications*, ch. 4), and invert it. The same
model run forwards gives the simulator its RSSI, so mock data and real data share one physics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agent.config import CalibrationPoint
from agent.errors import BadCalibration

MIN_DISTANCE_M = 0.1  # the ESPresense firmware floors distances here too


@dataclass(frozen=True, slots=True)
class LogDistanceModel:
    """``rssi = rssi_at_1m - 10 * n * log10(d)``."""

    rssi_at_1m: float
    n: float

    @classmethod
    def fit(cls, table: Sequence[CalibrationPoint]) -> LogDistanceModel:
        if len(table) < 2:
            raise BadCalibration("calibration", "table", "at least 2 points")
        xs = [math.log10(p.distance_m) for p in table]
        ys = [p.rssi_dbm for p in table]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx == 0:
            raise BadCalibration("calibration", "table", "points at two or more different distances")
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
        if slope >= 0:
            raise BadCalibration("calibration", "table", "RSSI falling with distance")
        return cls(rssi_at_1m=my - slope * mx, n=-slope / 10.0)

    def distance_m(self, rssi_dbm: float) -> float:
        """Distance for a (smoothed) RSSI, floored at 0.1 m."""
        return max(MIN_DISTANCE_M, 10 ** ((self.rssi_at_1m - rssi_dbm) / (10.0 * self.n)))

    def rssi_at(self, distance_m: float) -> float:
        """Expected RSSI at a distance (what the simulator emits before noise)."""
        return self.rssi_at_1m - 10.0 * self.n * math.log10(max(distance_m, MIN_DISTANCE_M))
