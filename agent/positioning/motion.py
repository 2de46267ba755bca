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
from collections import deque
from typing import NamedTuple

from agent.errors import BadReading
from agent.positioning.multilateration import Estimate

DEFAULT_ACCEL_MPS2 = 0.2  # std of a shopper's acceleration (white noise): strolls, gentle turns
GATE_CHI2 = 9.21  # 99 % of a 2-D Gaussian: beyond it a fix is down-weighted, not trusted
MIN_ACCURACY_M = 0.05
VAR_FLOOR = MIN_ACCURACY_M ** 2 / 2.0  # per-axis variance of a fix at MIN_ACCURACY_M (radial)


class Motion(NamedTuple):
    """The filter's belief now: position and velocity with their per-axis variances (metres, seconds).

    What a room decision needs beyond the point: how far off the point may be (``var_x``,
    ``var_y``) and whether the walker is really heading somewhere (``vx_mps`` against ``var_vx``).
    """

    x_m: float
    y_m: float
    var_x: float
    var_y: float
    vx_mps: float
    vy_mps: float
    var_vx: float
    var_vy: float


class _Axis:
    """Position/velocity Kalman state of one axis."""

    __slots__ = ("p", "pp", "pv", "v", "vv")

    def __init__(self, p: float, var: float, vv: float) -> None:
        self.p, self.v = p, 0.0
        self.pp, self.pv, self.vv = var, 0.0, vv

    def predict(self, dt: float, q: float, vv_max: float) -> None:
        if dt <= 0:
            return
        pv, vv = self.pv, self.vv
        self.p += self.v * dt
        dt2 = dt * dt
        vv_new = vv + q * dt
        self._set_psd(self.pp + (2 * dt * pv + dt2 * vv + q * dt2 * dt / 3.0), pv + (dt * vv + q * dt2 / 2.0),
                      vv_max if vv_max < vv_new else vv_new)  # min(vv_new, vv_max)

    def _set_psd(self, pp: float, pv: float, vv: float) -> None:
        """Capping vv (and rounding) must not leave a covariance that claims negative variance."""
        # max()/min() as comparisons (same results, NaN included): runs after every predict and update.
        if 1e-12 > pp:
            pp = 1e-12
        if 1e-12 > vv:
            vv = 1e-12
        bound = math.sqrt(pp * vv)
        pv = pv if pv < bound else bound  # min(bound, pv)
        self.pp, self.vv = pp, vv
        self.pv = pv if pv > -bound else -bound  # max(-bound, pv)

    def update(self, z: float, r: float) -> None:
        pp, pv = self.pp, self.pv
        s = pp + r
        kp, kv = pp / s, pv / s
        innovation = z - self.p
        self.p += kp * innovation
        self.v += kv * innovation
        self._set_psd(pp - kp * pp, pv - kp * pv, self.vv - kv * pv)


class MotionFilter:
    """Kalman-style smoothing of position fixes with a walking-speed limit."""

    __slots__ = ("_history", "_ts", "_x", "_y", "accel_mps2", "max_speed_mps")

    def __init__(self, *, max_speed_mps: float = 1.6, accel_mps2: float = DEFAULT_ACCEL_MPS2,
                 keep_steps: int = 0) -> None:
        if not (max_speed_mps > 0 and math.isfinite(max_speed_mps)):
            raise ValueError(f"max_speed_mps must be a positive number, got {max_speed_mps!r}")
        self.max_speed_mps = float(max_speed_mps)
        self.accel_mps2 = float(accel_mps2)
        self._x: _Axis | None = None
        self._y: _Axis | None = None
        self._ts = 0.0
        # For fixed-lag smoothing: (ts, dt, predicted x/y states, filtered x/y states) per update.
        self._history: deque[tuple[float, float, tuple | None, tuple]] = deque(maxlen=max(0, keep_steps))

    @property
    def estimate(self) -> Estimate | None:
        if self._x is None or self._y is None:
            return None
        return Estimate(self._x.p, self._y.p, math.sqrt(self._x.pp + self._y.pp))

    @property
    def motion(self) -> Motion | None:
        """Position, velocity and their variances after the last update (None before the first)."""
        ax, ay = self._x, self._y
        if ax is None or ay is None:
            return None
        return Motion(ax.p, ay.p, ax.pp, ay.pp, ax.v, ay.v, ax.vv, ay.vv)

    @property
    def velocity_mps(self) -> tuple[float, float]:
        if self._x is None or self._y is None:
            return (0.0, 0.0)
        return (self._x.v, self._y.v)

    def predict(self, ts: float) -> Estimate | None:
        """Where the filter expects the device at ``ts``, without changing its state."""
        p = self.predict_xy(ts)
        return None if p is None else Estimate(*p)

    def predict_xy(self, ts: float) -> tuple[float, float, float] | None:
        """:meth:`predict` as a plain (x_m, y_m, accuracy_m) tuple, for the Locator's hot path."""
        p = self.predict_var(ts)
        return None if p is None else (p[0], p[1], math.sqrt(max(p[2] + p[3], 0.0)))

    def predict_var(self, ts: float) -> tuple[float, float, float, float] | None:
        """The prediction at ``ts`` per axis: (x_m, y_m, var_x, var_y), without changing the state.

        The Locator needs the per-axis variances, not just the radial accuracy, to know where the
        Kalman update will land before it makes it (see Locator.update_checked).
        """
        ax, ay = self._x, self._y
        if ax is None or ay is None:
            return None
        dt = max(0.0, ts - self._ts)
        q = self.accel_mps2 ** 2
        var_x = ax.pp + 2 * dt * ax.pv + dt * dt * ax.vv + q * dt ** 3 / 3.0
        var_y = ay.pp + 2 * dt * ay.pv + dt * dt * ay.vv + q * dt ** 3 / 3.0
        return (ax.p + ax.v * dt, ay.p + ay.v * dt, var_x, var_y)

    def update(self, ts: float, x_m: float, y_m: float, accuracy_m: float) -> Estimate:
        """Add a fix with radial accuracy ``accuracy_m``; returns the filtered estimate."""
        acc = float(accuracy_m)
        if not math.isfinite(acc) or acc < 0:
            raise BadReading(f"accuracy_m: a finite number >= 0, got {accuracy_m!r}")
        var = max(acc, MIN_ACCURACY_M) ** 2 / 2.0
        return self.update_cov(ts, x_m, y_m, var, var)

    def update_cov(self, ts: float, x_m: float, y_m: float, var_x: float, var_y: float) -> Estimate:
        """Add a fix with per-axis variances (m^2), as the multilateration solver reports them."""
        isfinite = math.isfinite
        if not (isfinite(ts) and isfinite(x_m) and isfinite(y_m) and isfinite(var_x) and isfinite(var_y)):
            for name, v in (("ts", ts), ("x_m", x_m), ("y_m", y_m), ("var_x", var_x), ("var_y", var_y)):
                if not isfinite(v):
                    raise BadReading(f"{name}: a finite number, got {v!r}")
        # max()/min() below as comparisons (same results): this runs for every fused fix.
        if VAR_FLOOR > var_x:
            var_x = VAR_FLOOR
        if VAR_FLOOR > var_y:
            var_y = VAR_FLOOR
        vv_max = self.max_speed_mps ** 2
        fx, fy = self._x, self._y
        if fx is None or fy is None:
            self._x = _Axis(x_m, var_x, vv_max / 4.0)
            self._y = _Axis(y_m, var_y, vv_max / 4.0)
            self._ts = ts
            self._remember(ts, 0.0, None)
            return Estimate(x_m, y_m, math.sqrt(var_x + var_y))
        dt = ts - self._ts
        if not dt > 0.0:
            dt = 0.0
        q = self.accel_mps2 ** 2
        fx.predict(dt, q, vv_max)
        fy.predict(dt, q, vv_max)
        remember = self._history.maxlen
        predicted = (_state(fx), _state(fy)) if remember else None
        if ts > self._ts:
            self._ts = ts
        # A fix the filter finds implausible counts less, in proportion to how implausible it is.
        ix, iy = x_m - fx.p, y_m - fy.p
        d2 = ix * ix / (fx.pp + var_x) + iy * iy / (fy.pp + var_y)
        if d2 > GATE_CHI2:
            inflate = d2 / GATE_CHI2
            var_x, var_y = var_x * inflate, var_y * inflate
        fx.update(x_m, var_x)
        fy.update(y_m, var_y)
        speed = math.hypot(fx.v, fy.v)
        if speed > self.max_speed_mps:
            k = self.max_speed_mps / speed
            fx.v *= k
            fy.v *= k
        if remember:
            self._remember(self._ts, dt, predicted)
        return Estimate(fx.p, fy.p, math.sqrt(fx.pp + fy.pp))

    def _remember(self, ts: float, dt: float, predicted: tuple | None) -> None:
        if self._history.maxlen and self._x is not None and self._y is not None:
            self._history.append((ts, dt, predicted, (_state(self._x), _state(self._y))))

    def smoothed(self, steps_back: int) -> Estimate | None:
        """Fixed-lag (Rauch-Tung-Striebel) estimate of the update ``steps_back`` updates ago.

        Uses the fixes that came after it, so it is better than the live estimate but late by
        ``steps_back`` updates: right for zone dwell and analytics, not for the live map. Needs
        ``keep_steps`` > ``steps_back`` at construction.
        """
        hist = self._history
        if not hist:
            return None
        steps_back = min(steps_back, len(hist) - 1)
        last = hist[-1][3]
        sx, sy = last
        for i in range(len(hist) - 1, len(hist) - 1 - steps_back, -1):
            _, dt, predicted, _ = hist[i]
            filt = hist[i - 1][3]
            if predicted is None:
                break
            sx = _rts(filt[0], predicted[0], sx, dt)
            sy = _rts(filt[1], predicted[1], sy, dt)
        return Estimate(sx[0], sy[0], math.sqrt(max(sx[2], 0.0) + max(sy[2], 0.0)))

    def reset(self) -> None:
        self._x = self._y = None
        self._ts = 0.0
        self._history.clear()


State = tuple[float, float, float, float, float]  # p, v, pp, pv, vv


def _state(a: _Axis) -> State:
    return (a.p, a.v, a.pp, a.pv, a.vv)


def _rts(filt: State, pred: State, smooth_next: State, dt: float) -> State:
    """One backward RTS step of one axis: filtered at k, predicted k+1|k, smoothed k+1."""
    p, v, pp, pv, vv = filt
    qp, qv, qpp, qpv, qvv = pred
    sp, sv, spp, spv, svv = smooth_next
    # C = P_k F^T Pred^-1, F = [[1, dt], [0, 1]]
    a11, a12, a21, a22 = pp + dt * pv, pv, pv + dt * vv, vv  # P_k F^T
    det = qpp * qvv - qpv * qpv
    if det <= 0:
        return filt
    i11, i12, i22 = qvv / det, -qpv / det, qpp / det
    c11, c12 = a11 * i11 + a12 * i12, a11 * i12 + a12 * i22
    c21, c22 = a21 * i11 + a22 * i12, a21 * i12 + a22 * i22
    dp, dv = sp - qp, sv - qv
    d11, d12, d22 = spp - qpp, spv - qpv, svv - qvv
    new_p = p + c11 * dp + c12 * dv
    new_v = v + c21 * dp + c22 * dv
    # P_s = P + C D C^T
    m11 = c11 * d11 + c12 * d12
    m12 = c11 * d12 + c12 * d22
    m21 = c21 * d11 + c22 * d12
    m22 = c21 * d12 + c22 * d22
    return (new_p, new_v, pp + m11 * c11 + m12 * c12, pv + m11 * c21 + m12 * c22, vv + m21 * c21 + m22 * c22)
