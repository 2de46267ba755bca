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
DEFAULT_SIGMA_DB = 4.0  # indoor shadowing at 2.4 GHz is typically 3-6 dB (Rappaport ch. 4)
MIN_SIGMA_M = 0.1  # below this the distance floor, not the noise, dominates


@dataclass(frozen=True, slots=True)
class LogDistanceModel:
    """``rssi = rssi_at_1m - 10 * n * log10(d)``, with ``sigma_db`` of shadowing around it."""

    rssi_at_1m: float
    n: float
    sigma_db: float = DEFAULT_SIGMA_DB

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

    @classmethod
    def fit_samples(cls, distances_m: Sequence[float], rssis_dbm: Sequence[float],
                    *, min_sigma_db: float = 1.0) -> LogDistanceModel:
        """Fit from raw (distance, RSSI) samples, e.g. a survey with ground truth.

        Unlike a walk-test table these are single noisy readings, so the residual spread is a fair
        estimate of the shadowing; it becomes ``sigma_db`` (never below ``min_sigma_db``).
        """
        pairs = [(math.log10(max(d, MIN_DISTANCE_M)), r) for d, r in zip(distances_m, rssis_dbm, strict=True)
                 if math.isfinite(d) and math.isfinite(r)]
        if len(pairs) < 3:
            raise BadCalibration("calibration", "samples", "at least 3 finite (distance, RSSI) samples")
        model = cls.fit([CalibrationPoint(10 ** x, y) for x, y in pairs])
        ssr = sum((y - model.rssi_at(10 ** x)) ** 2 for x, y in pairs)
        sigma = math.sqrt(ssr / (len(pairs) - 2))
        return cls(model.rssi_at_1m, model.n, max(min_sigma_db, sigma))

    @property
    def relative_sigma(self) -> float:
        """Spread of ``ln(distance)``: ``sigma_db`` through the model is a constant *relative* error."""
        return math.log(10.0) * self.sigma_db / (10.0 * self.n)

    def sigma_m(self, distance_m: float) -> float:
        """One-sigma uncertainty of a distance from this model, in metres.

        Noise is in dB, so the error is proportional to the distance: ~19 % at n = 3 and 2.5 dB,
        ~31 % at 4 dB. Far receivers therefore count less than near ones in multilateration.
        """
        return max(MIN_SIGMA_M, self.relative_sigma * max(distance_m, MIN_DISTANCE_M))

    def distance_m(self, rssi_dbm: float) -> float:
        """Distance for a (smoothed) RSSI, floored at 0.1 m."""
        return max(MIN_DISTANCE_M, 10 ** ((self.rssi_at_1m - rssi_dbm) / (10.0 * self.n)))

    def rssi_at(self, distance_m: float) -> float:
        """Expected RSSI at a distance (what the simulator emits before noise)."""
        return self.rssi_at_1m - 10.0 * self.n * math.log10(max(distance_m, MIN_DISTANCE_M))
