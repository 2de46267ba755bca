"""Distance from RSSI with a per-device calibration table (log-distance path-loss model).

The table is what an installer measures in the walk test: RSSI of a reference phone at known
distances (1, 2, 4, 8 m). We fit ``rssi = rssi_at_1m - 10 n log10(d)`` by least squares, the
standard indoor model (Rappaport, *Wireless Communications*, ch. 4), and invert it. The same
model run forwards gives the simulator its RSSI, so mock data and real data share one physics.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from agent.config import CalibrationPoint
from agent.errors import BadCalibration

MIN_DISTANCE_M = 0.1  # the ESPresense firmware floors distances here too
DEFAULT_SIGMA_DB = 4.0  # indoor shadowing at 2.4 GHz is typically 3-6 dB (Rappaport ch. 4)
MIN_SIGMA_M = 0.1  # below this the distance floor, not the noise, dominates
# The lowest path-loss exponent measured indoors (Rappaport, *Wireless Communications*, table 4.2:
# in-building line of sight 1.6-1.8). A survey fit below it describes the survey (it did not span
# the distances, or multipath near the receivers flattened it), not how RSSI falls with distance.
MIN_INDOOR_N = 1.6

K = TypeVar("K", bound=Hashable)


def sigma_from_relative(relative_sigma: float, distance_m: float) -> float:
    """:meth:`LogDistanceModel.sigma_m` from the model's relative sigma, for callers that keep it
    (the aggregator's fusion computes it once per sniffer, not once per range)."""
    return max(MIN_SIGMA_M, relative_sigma * max(distance_m, MIN_DISTANCE_M))


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
        return sigma_from_relative(self.relative_sigma, distance_m)

    def distance_m(self, rssi_dbm: float) -> float:
        """Distance for a (smoothed) RSSI, floored at 0.1 m."""
        return max(MIN_DISTANCE_M, 10 ** ((self.rssi_at_1m - rssi_dbm) / (10.0 * self.n)))

    def rssi_at(self, distance_m: float) -> float:
        """Expected RSSI at a distance (what the simulator emits before noise)."""
        return self.rssi_at_1m - 10.0 * self.n * math.log10(max(distance_m, MIN_DISTANCE_M))


def fit_receivers(samples: Mapping[K, tuple[Sequence[float], Sequence[float]]], *,
                  min_n: float = MIN_INDOOR_N, min_sigma_db: float = 1.0) -> dict[K, LogDistanceModel]:
    """One model per receiver from a survey with ground truth: ``{receiver: (distances_m, rssis_dbm)}``.

    What differs between receivers is mostly a constant (antenna gain, mounting, the wall behind):
    each gets its own ``rssi_at_1m``. How fast RSSI falls with distance is a property of the
    building, and a receiver the survey passed only at a few distances cannot pin it: ``n`` is one
    exponent fitted on all receivers at once (each about its own mean, as in an analysis of
    covariance), never below ``min_n``, and ``sigma_db`` the residual spread of the whole fit.
    Parameters: one offset per receiver, one exponent, one sigma. On the real calib2021 survey a
    single model for all receivers fitted on the first half of the run gives n 1.03 and scores
    1.55 m on the second half; these models with the grid filter score 1.01 m (docs/POSITIONING.md).
    Raises BadCalibration naming the receiver with fewer than 2 finite samples.
    """
    cleaned: dict[K, list[tuple[float, float]]] = {}
    for key, (distances, rssis) in samples.items():
        pairs = [(math.log10(max(d, MIN_DISTANCE_M)), r) for d, r in zip(distances, rssis, strict=True)
                 if math.isfinite(d) and math.isfinite(r)]
        if len(pairs) < 2:
            raise BadCalibration("calibration", f"receiver {key!r}", "at least 2 finite (distance, RSSI) samples")
        cleaned[key] = pairs
    if not cleaned:
        raise BadCalibration("calibration", "samples", "at least one receiver")
    means = {k: (sum(x for x, _ in p) / len(p), sum(y for _, y in p) / len(p)) for k, p in cleaned.items()}
    sxx = sum((x - means[k][0]) ** 2 for k, p in cleaned.items() for x, _ in p)
    sxy = sum((x - means[k][0]) * (y - means[k][1]) for k, p in cleaned.items() for x, y in p)
    fitted_n = -sxy / sxx / 10.0 if sxx > 0 else min_n
    n = max(min_n, fitted_n)
    offsets = {k: my + 10.0 * n * mx for k, (mx, my) in means.items()}
    ssr = sum((y - offsets[k] + 10.0 * n * x) ** 2 for k, p in cleaned.items() for x, y in p)
    dof = max(1, sum(len(p) for p in cleaned.values()) - len(cleaned) - 1)
    sigma = max(min_sigma_db, math.sqrt(ssr / dof))
    return {k: LogDistanceModel(offsets[k], n, sigma) for k in cleaned}


@dataclass(frozen=True, slots=True)
class MonotoneModel:
    """Piecewise-linear RSSI vs log10(distance) through the walk-test table, same methods as the fit.

    A store is not free space: a shelf between 2 m and 4 m can make the table bend. Interpolating
    the measured points keeps that bend instead of averaging it away. The table is first made
    monotone (pool-adjacent-violators: RSSI never rises with distance), and beyond its ends the
    log-distance fit's slope carries on, so the model is defined and invertible everywhere.
    """

    log_d: tuple[float, ...]
    rssi: tuple[float, ...]
    fit_model: LogDistanceModel

    @classmethod
    def fit(cls, table: Sequence[CalibrationPoint], sigma_db: float = DEFAULT_SIGMA_DB) -> MonotoneModel:
        base = LogDistanceModel.fit(table)
        points = sorted((math.log10(max(p.distance_m, MIN_DISTANCE_M)), p.rssi_dbm) for p in table)
        merged: list[tuple[float, float]] = []  # average RSSI of repeated distances
        for x, _ in points:
            if merged and merged[-1][0] == x:
                continue
            ys = [py for px, py in points if px == x]
            merged.append((x, sum(ys) / len(ys)))
        blocks: list[list[float]] = []  # pool adjacent violators: [sum, count]
        for _, y in merged:
            blocks.append([y, 1.0])
            while len(blocks) > 1 and blocks[-1][0] / blocks[-1][1] > blocks[-2][0] / blocks[-2][1] - 1e-9:
                s, c = blocks.pop()
                blocks[-1][0] += s
                blocks[-1][1] += c
        values: list[float] = []
        for s, c in blocks:
            values.extend([s / c] * int(c))
        # Equal neighbours would make the inverse ambiguous: tilt them by the fit's slope, slightly.
        slope = -10.0 * base.n
        for i in range(1, len(values)):
            if values[i] >= values[i - 1]:
                values[i] = values[i - 1] + slope * (merged[i][0] - merged[i - 1][0]) * 1e-3
        return cls(tuple(x for x, _ in merged), tuple(values),
                   LogDistanceModel(base.rssi_at_1m, base.n, sigma_db))

    @property
    def n(self) -> float:
        return self.fit_model.n

    @property
    def sigma_db(self) -> float:
        return self.fit_model.sigma_db

    def rssi_at(self, distance_m: float) -> float:
        x = math.log10(max(distance_m, MIN_DISTANCE_M))
        xs, ys = self.log_d, self.rssi
        slope = -10.0 * self.fit_model.n
        if x <= xs[0]:
            return ys[0] + slope * (x - xs[0])
        if x >= xs[-1]:
            return ys[-1] + slope * (x - xs[-1])
        i = next(k for k in range(1, len(xs)) if x <= xs[k])
        f = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
        return ys[i - 1] + f * (ys[i] - ys[i - 1])

    def distance_m(self, rssi_dbm: float) -> float:
        xs, ys = self.log_d, self.rssi
        slope = -10.0 * self.fit_model.n
        if rssi_dbm >= ys[0]:
            x = xs[0] + (rssi_dbm - ys[0]) / slope
        elif rssi_dbm <= ys[-1]:
            x = xs[-1] + (rssi_dbm - ys[-1]) / slope
        else:
            i = next(k for k in range(1, len(ys)) if rssi_dbm >= ys[k])
            f = (rssi_dbm - ys[i - 1]) / (ys[i] - ys[i - 1])
            x = xs[i - 1] + f * (xs[i] - xs[i - 1])
        return max(MIN_DISTANCE_M, 10 ** x)

    def sigma_m(self, distance_m: float) -> float:
        return self.fit_model.sigma_m(distance_m)
