"""One device's track: multilateration, robust weighting against the motion prior, and the filter.

A single fix cannot tell which of four receivers a body is blocking (four distances, two unknowns,
and a 6 dB dip is only ~2.4 sigma). Over time it can: the motion filter predicts where the device
should be, and a receiver whose distance is much *longer* than that prediction allows is the one
being blocked. The Locator therefore

1. predicts the position at the new timestamp (``MotionFilter.predict``),
2. solves the fix with the prediction as a soft prior, only to decide each receiver's robust
   weight (so the prior is not counted twice),
3. solves again from the receivers alone with those weights, giving an independent measurement
   and its covariance,
4. feeds that to the motion filter (a Kalman update with a walking-speed limit).
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.positioning.motion import MotionFilter
from agent.positioning.multilateration import Anchor, Bounds, Estimate, check_bounds, solve

# The prediction is trusted a little less than the filter thinks: shoppers stop and turn.
PRIOR_INFLATION = 1.5
# Along a track the prior already exposes the receiver that is off, and bias matters more than one
# fix's median (the filter averages noise, not bias), so the asymmetric weighting is milder than for
# a lone fix. Harsher thresholds (0.3, 1.5) cost 0.4 m on the real calib2021 data (docs/POSITIONING.md).
TRACK_THRESHOLDS = (1.0, 2.0)


class Locator:
    """Turns successive sets of receiver distances for one device into a smoothed track."""

    __slots__ = ("bounds_m", "filter", "last_fix", "thresholds", "use_prior")

    def __init__(self, bounds_m: Bounds, *, max_speed_mps: float = 1.6, accel_mps2: float | None = None,
                 use_prior: bool = True, thresholds: tuple[float, float] = TRACK_THRESHOLDS,
                 lag_steps: int = 0) -> None:
        self.bounds_m = check_bounds(bounds_m)
        self.thresholds = thresholds
        kwargs = {} if accel_mps2 is None else {"accel_mps2": accel_mps2}
        self.filter = MotionFilter(max_speed_mps=max_speed_mps, keep_steps=lag_steps + 1 if lag_steps else 0,
                                   **kwargs)
        self.use_prior = use_prior
        self.last_fix: Estimate | None = None

    def update(self, ts: float, anchors: Sequence[Anchor]) -> Estimate:
        """Add the receivers' distances measured at ``ts``; returns the filtered position."""
        predicted = self.filter.predict(ts) if self.use_prior else None
        if predicted is not None:
            prior = Estimate(predicted.x_m, predicted.y_m, predicted.accuracy_m * PRIOR_INFLATION)
            lt, st = self.thresholds
            weights = solve(anchors, self.bounds_m, prior=prior, long_threshold=lt, short_threshold=st).weights
            fix = solve(anchors, self.bounds_m, weights=weights)
        else:
            fix = solve(anchors, self.bounds_m, long_threshold=self.thresholds[0],
                        short_threshold=self.thresholds[1])
        self.last_fix = fix.estimate
        var_x, _, var_y = fix.cov
        est = self.filter.update_cov(ts, fix.estimate.x_m, fix.estimate.y_m, var_x, var_y)
        return self._inside(est)

    def _inside(self, est: Estimate) -> Estimate:
        """The filter may overshoot a wall while turning; what we report never leaves the plan."""
        x0, y0, x1, y1 = self.bounds_m
        x, y = min(max(est.x_m, x0), x1), min(max(est.y_m, y0), y1)
        return est if (x, y) == (est.x_m, est.y_m) else Estimate(x, y, est.accuracy_m)

    def smoothed(self, steps_back: int) -> Estimate | None:
        """The position ``steps_back`` updates ago, refined by the fixes since (see MotionFilter.smoothed)."""
        est = self.filter.smoothed(steps_back)
        return None if est is None else self._inside(est)

    def reset(self) -> None:
        self.filter.reset()
        self.last_fix = None
