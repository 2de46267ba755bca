"""A motion filter across time: where a walking person can plausibly be now.

One fix from RSSI is good to about half a metre at best; a shopper, however, moves smoothly and
no faster than a brisk walk. A constant-velocity Kalman filter (per axis, with white acceleration
noise) averages successive fixes while following a steady walk without lag, and three guards keep
it honest with real radio data:

* velocity is capped at ``max_speed_mps`` (nobody sprints through a shop),
* a fix far outside what the filter expects (Mahalanobis distance beyond the gate) is not thrown
  away but counted with an inflated variance, so a real jump wins after a few fixes,
* timestamps going backwards count as simultaneous; after a long silence the uncertainty grows
  with time so the next fix takes over.
"""

from __future__ import annotations

import math

from agent.errors import BadReading
from agent.positioning.multilateration import Estimate

DEFAULT_ACCEL_MPS2 = 0.2  # std of a shopper's acceleration (white noise): strolls, gentle turns
GATE_CHI2 = 9.21  # 99 % of a 2-D Gaussian: beyond it a fix is down-weighted, not trusted
MIN_ACCURACY_M = 0.05


class _Axis:
    """Position/velocity Kalman state of one axis."""

    __slots__ = ("p", "pp", "pv", "v", "vv")

    def __init__(self, p: float, var: float, vv: float) -> None:
        self.p, self.v = p, 0.0
        self.pp, self.pv, self.vv = var, 0.0, vv

    def predict(self, dt: float, q: float, vv_max: float) -> None:
        if dt <= 0:
            return
        self.p += self.v * dt
        dt2 = dt * dt
        self.pp += 2 * dt * self.pv + dt2 * self.vv + q * dt2 * dt / 3.0
        self.pv += dt * self.vv + q * dt2 / 2.0
        self.vv = min(self.vv + q * dt, vv_max)

    def update(self, z: float, r: float) -> None:
        s = self.pp + r
        kp, kv = self.pp / s, self.pv / s
        innovation = z - self.p
        self.p += kp * innovation
        self.v += kv * innovation
        pp, pv = self.pp, self.pv
        self.pp = pp - kp * pp
        self.pv = pv - kp * pv
        self.vv = self.vv - kv * pv


class MotionFilter:
    """Kalman-style smoothing of position fixes with a walking-speed limit."""

    __slots__ = ("_ts", "_x", "_y", "accel_mps2", "max_speed_mps")

    def __init__(self, *, max_speed_mps: float = 1.6, accel_mps2: float = DEFAULT_ACCEL_MPS2) -> None:
        if not (max_speed_mps > 0 and math.isfinite(max_speed_mps)):
            raise ValueError(f"max_speed_mps must be a positive number, got {max_speed_mps!r}")
        self.max_speed_mps = float(max_speed_mps)
        self.accel_mps2 = float(accel_mps2)
        self._x: _Axis | None = None
        self._y: _Axis | None = None
        self._ts = 0.0

    @property
    def estimate(self) -> Estimate | None:
        if self._x is None or self._y is None:
            return None
        return Estimate(self._x.p, self._y.p, math.sqrt(self._x.pp + self._y.pp))

    @property
    def velocity_mps(self) -> tuple[float, float]:
        if self._x is None or self._y is None:
            return (0.0, 0.0)
        return (self._x.v, self._y.v)

    def predict(self, ts: float) -> Estimate | None:
        """Where the filter expects the device at ``ts``, without changing its state."""
        if self._x is None or self._y is None:
            return None
        dt = max(0.0, ts - self._ts)
        q = self.accel_mps2 ** 2
        var_x = self._x.pp + 2 * dt * self._x.pv + dt * dt * self._x.vv + q * dt ** 3 / 3.0
        var_y = self._y.pp + 2 * dt * self._y.pv + dt * dt * self._y.vv + q * dt ** 3 / 3.0
        return Estimate(self._x.p + self._x.v * dt, self._y.p + self._y.v * dt, math.sqrt(var_x + var_y))

    def update(self, ts: float, x_m: float, y_m: float, accuracy_m: float) -> Estimate:
        """Add a fix with radial accuracy ``accuracy_m``; returns the filtered estimate."""
        acc = float(accuracy_m)
        if not math.isfinite(acc) or acc < 0:
            raise BadReading(f"accuracy_m: a finite number >= 0, got {accuracy_m!r}")
        var = max(acc, MIN_ACCURACY_M) ** 2 / 2.0
        return self.update_cov(ts, x_m, y_m, var, var)

    def update_cov(self, ts: float, x_m: float, y_m: float, var_x: float, var_y: float) -> Estimate:
        """Add a fix with per-axis variances (m^2), as the multilateration solver reports them."""
        for name, v in (("ts", ts), ("x_m", x_m), ("y_m", y_m), ("var_x", var_x), ("var_y", var_y)):
            if not math.isfinite(v):
                raise BadReading(f"{name}: a finite number, got {v!r}")
        floor = MIN_ACCURACY_M ** 2 / 2.0
        var_x, var_y = max(var_x, floor), max(var_y, floor)
        vv_max = self.max_speed_mps ** 2
        if self._x is None or self._y is None:
            self._x = _Axis(x_m, var_x, vv_max / 4.0)
            self._y = _Axis(y_m, var_y, vv_max / 4.0)
            self._ts = ts
            return Estimate(x_m, y_m, math.sqrt(var_x + var_y))
        dt = max(0.0, ts - self._ts)
        q = self.accel_mps2 ** 2
        self._x.predict(dt, q, vv_max)
        self._y.predict(dt, q, vv_max)
        self._ts = max(self._ts, ts)
        # A fix the filter finds implausible counts less, in proportion to how implausible it is.
        ix, iy = x_m - self._x.p, y_m - self._y.p
        d2 = ix * ix / (self._x.pp + var_x) + iy * iy / (self._y.pp + var_y)
        if d2 > GATE_CHI2:
            inflate = d2 / GATE_CHI2
            var_x, var_y = var_x * inflate, var_y * inflate
        self._x.update(x_m, var_x)
        self._y.update(y_m, var_y)
        speed = math.hypot(self._x.v, self._y.v)
        if speed > self.max_speed_mps:
            k = self.max_speed_mps / speed
            self._x.v *= k
            self._y.v *= k
        return Estimate(self._x.p, self._y.p, math.sqrt(self._x.pp + self._y.pp))

    def reset(self) -> None:
        self._x = self._y = None
        self._ts = 0.0
