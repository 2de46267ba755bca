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
4. feeds that to the motion filter (a Kalman update with a walking-speed limit), with the fix's
   covariance taken where that update lands rather than at the fix (a fix's weight must not
   depend on its own error; see ``multilateration._posterior_geometry``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from agent.positioning.motion import Motion, MotionFilter
from agent.positioning.multilateration import (
    Anchor,
    Bounds,
    Columns,
    Estimate,
    anchor_terms,
    check_bounds,
    check_prior,
    columns,
    solve_checked,
)

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
        """Add the receivers' distances measured at ``ts``; returns the filtered position.

        Raises BadReading on NaN/inf/empty anchors (validated once, then solved twice).
        """
        return self.update_checked(ts, columns(anchors))

    def update_checked(self, ts: float, cols: Columns) -> Estimate:
        """:meth:`update` for anchors already validated, in the column form of ``multilateration.columns``.

        The aggregator's fusion builds its columns from contract-checked ranges and checks the
        solver's bounds itself, so it skips the per-anchor validation (a fifth of a solve's cost).
        """
        predicted = self.filter.predict_var(ts)
        lt, st = self.thresholds
        if predicted is not None and self.use_prior:
            px, py, pvx, pvy = predicted
            # BadReading if the prediction left the solver's range (hours of silence: its variance grows as dt^3).
            prior = check_prior(px, py, math.sqrt(max(pvx + pvy, 0.0)) * PRIOR_INFLATION)
            terms = anchor_terms(cols)  # shared by both passes
            weights = solve_checked(cols, self.bounds_m, prior=prior, long_threshold=lt, short_threshold=st,
                                    weights_only=True, terms=terms)[3]
            x, y, acc, _, cov = solve_checked(cols, self.bounds_m, weights=weights, terms=terms,
                                              linearize_at=predicted)
        else:
            x, y, acc, _, cov = solve_checked(cols, self.bounds_m, long_threshold=lt, short_threshold=st,
                                              linearize_at=predicted)
        self.last_fix = Estimate(x, y, acc)
        var_x, _, var_y = cov
        est = self.filter.update_cov(ts, x, y, var_x, var_y)
        return self._inside(est)

    def _inside(self, est: Estimate) -> Estimate:
        """The filter may overshoot a wall while turning; what we report never leaves the plan."""
        x0, y0, x1, y1 = self.bounds_m
        x, y = min(max(est.x_m, x0), x1), min(max(est.y_m, y0), y1)
        return est if (x, y) == (est.x_m, est.y_m) else Estimate(x, y, est.accuracy_m)

    @property
    def motion(self) -> Motion | None:
        """The filter's position, velocity and variances, for a room decision (ZoneTracker.update).

        The position is the filter's own, not clamped to the plan like the returned estimate.
        """
        return self.filter.motion

    def smoothed(self, steps_back: int) -> Estimate | None:
        """The position ``steps_back`` updates ago, refined by the fixes since (see MotionFilter.smoothed)."""
        est = self.filter.smoothed(steps_back)
        return None if est is None else self._inside(est)

    def reset(self) -> None:
        self.filter.reset()
        self.last_fix = None
