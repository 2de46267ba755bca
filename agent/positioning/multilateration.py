"""Position from distances to receivers at known positions (multilateration).

Why it is done this way:

* RSSI noise lives on the dB side, so a distance is off by a *factor*, not by metres. We therefore
  fit in log-distance space: the residual of receiver i is ``ln(measured_i) - ln(|p - a_i|)``
  divided by its relative sigma (``sigma_m / distance_m``). A far receiver automatically counts less.
* Multipath and bodies only ever *weaken* a signal, which makes a distance too LONG. Residuals
  saying "measured longer than the geometry allows" are down-weighted sooner than the opposite
  (an asymmetric Huber weight), so one blocked receiver cannot drag the estimate away.
* It must be cheap: the aggregator fuses thousands of reports per second. A weighted centroid
  start and a handful of Gauss-Newton steps on a 2 x 2 system, in plain Python (numpy's call
  overhead is larger than the work for four receivers).
* Estimates never leave the plan: every step is clamped to ``bounds_m``. A lone fix whose best fit
  lies on the plan's edge reports the mean of the fit *inside* the plan instead (see
  :func:`_mean_inside`): the readings then say "beyond the wall", the plan says "inside", and the
  wall itself is not the likeliest place of all.
* One or two receivers cannot fix a point; we say so with a large ``accuracy_m`` instead of
  inventing precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agent.errors import BadReading

Bounds = tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in metres

MIN_DISTANCE_M = 0.1  # same floor as the firmware's distance formula
MIN_REL_SIGMA = 0.05  # no receiver is trusted to better than 5 % of its distance
# Asymmetric Huber thresholds, in sigmas: "too long" (multipath) is suspected sooner than "too short".
LONG_THRESHOLD = 0.5
SHORT_THRESHOLD = 1.0
MAX_ITERATIONS = 8
MAX_ABS_M = 1e6  # a thousand kilometres: anything larger is a unit mistake, not a shop
STEP_TOLERANCE_M = 1e-3


@dataclass(frozen=True, slots=True)
class Anchor:
    """A receiver at (x_m, y_m) that measured ``distance_m`` with one-sigma ``sigma_m``."""

    x_m: float
    y_m: float
    distance_m: float
    sigma_m: float


@dataclass(frozen=True, slots=True)
class Estimate:
    """A position in metres and the radius (one sigma, radial) it is good to."""

    x_m: float
    y_m: float
    accuracy_m: float


@dataclass(frozen=True, slots=True)
class Solution:
    """What the solver knows beyond the estimate: the robust weight it gave each anchor (0..1)."""

    estimate: Estimate
    weights: tuple[float, ...]
    cov: tuple[float, float, float]  # var_x, cov_xy, var_y of the measurement alone, m^2


def _finite(value: float, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BadReading(f"{what}: a number, got {value!r}") from None
    if not math.isfinite(v) or abs(v) > MAX_ABS_M:
        raise BadReading(f"{what}: a finite number of metres within +-{MAX_ABS_M:g}, got {value!r}")
    return v


def check_anchors(anchors: Sequence[Anchor]) -> list[Anchor]:
    """The anchors, validated: at least one, every field finite, distances >= 0, sigmas > 0."""
    if not anchors:
        raise BadReading("anchors: at least one receiver reading, got none")
    out: list[Anchor] = []
    for i, a in enumerate(anchors):
        x = _finite(a.x_m, f"anchors[{i}].x_m")
        y = _finite(a.y_m, f"anchors[{i}].y_m")
        d = _finite(a.distance_m, f"anchors[{i}].distance_m")
        s = _finite(a.sigma_m, f"anchors[{i}].sigma_m")
        if d < 0:
            raise BadReading(f"anchors[{i}].distance_m: >= 0, got {d!r}")
        if s <= 0:
            raise BadReading(f"anchors[{i}].sigma_m: > 0, got {s!r}")
        out.append(Anchor(x, y, max(d, MIN_DISTANCE_M), s))
    return out


def check_bounds(bounds_m: Bounds) -> Bounds:
    if len(bounds_m) != 4:
        raise BadReading(f"bounds_m: (x_min, y_min, x_max, y_max), got {bounds_m!r}")
    x0, y0, x1, y1 = (_finite(v, "bounds_m") for v in bounds_m)
    if x0 > x1 or y0 > y1:
        raise BadReading(f"bounds_m: x_min <= x_max and y_min <= y_max, got {bounds_m!r}")
    return (x0, y0, x1, y1)


def _clamp(x: float, y: float, b: Bounds) -> tuple[float, float]:
    return (min(max(x, b[0]), b[2]), min(max(y, b[1]), b[3]))


def _weight(e: float, long_threshold: float, short_threshold: float) -> float:
    """Asymmetric Huber weight of a normalised residual (positive = measured too long)."""
    if e > long_threshold:
        return long_threshold / e
    if e < -short_threshold:
        return -short_threshold / e
    return 1.0


def locate(anchors: Sequence[Anchor], bounds_m: Bounds, *, prior: Estimate | None = None) -> Estimate:
    """Best position for these receiver distances, inside ``bounds_m``.

    1 anchor: the receiver's own position, accuracy = its distance. 2: the point between them that
    splits the baseline in proportion to the distances, accuracy >= the shorter distance.
    3+: robust weighted least squares in log-distance space. ``prior`` (optional, e.g. the motion
    filter's prediction) joins as a soft constraint. Raises BadReading on NaN/inf/empty input.
    """
    return solve(anchors, bounds_m, prior=prior, edge_mean=True).estimate


def solve(anchors: Sequence[Anchor], bounds_m: Bounds, *, prior: Estimate | None = None,
          weights: Sequence[float] | None = None, long_threshold: float = LONG_THRESHOLD,
          short_threshold: float = SHORT_THRESHOLD, edge_mean: bool = False) -> Solution:
    """:func:`locate` with the details: per-anchor robust weights and the measurement covariance.

    ``weights`` fixes the robust weights instead of estimating them (used to solve again without
    the prior once the prior has helped decide which receiver to distrust). The thresholds (in
    sigmas) set where the asymmetric Huber weight starts to distrust a distance that is too long
    or too short for the geometry. ``edge_mean`` (3+ receivers, no prior): when the fit ends on
    the plan's edge, report the mean of the fit inside the plan (what :func:`locate` does for a
    lone fix; the Locator keeps the plain fit, as its motion filter weighs it by its covariance).
    """
    checked = check_anchors(anchors)
    b = check_bounds(bounds_m)
    if prior is not None:
        prior = Estimate(_finite(prior.x_m, "prior.x_m"), _finite(prior.y_m, "prior.y_m"),
                         max(1e-3, _finite(prior.accuracy_m, "prior.accuracy_m")))
    distinct = {(a.x_m, a.y_m) for a in checked}
    if len(distinct) == 1:
        return _single(checked, b)
    if len(checked) == 2 and prior is None and not any(_position_like(a) for a in checked):
        return _pair(checked, b)
    return _robust(checked, b, prior, weights, long_threshold, short_threshold, edge_mean and prior is None)


def _position_like(a: Anchor) -> bool:
    """An anchor whose uncertainty dwarfs its distance is a position estimate, not a range.

    The aggregator passes an agent's own estimate this way (distance ~0, sigma = its accuracy).
    Its error is Gaussian in metres, not in dB, so it gets a linear residual, not a log one.
    """
    return a.sigma_m > 2.0 * a.distance_m


def _single(anchors: list[Anchor], b: Bounds) -> Solution:
    """All readings from one place: we know the radius, not the direction."""
    w = [1.0 / (a.sigma_m ** 2) for a in anchors]
    d = sum(wi * a.distance_m for wi, a in zip(w, anchors, strict=True)) / sum(w)
    acc = max(d, math.sqrt(1.0 / sum(w)))  # a position estimate's own sigma when it exceeds the distance
    x, y = _clamp(anchors[0].x_m, anchors[0].y_m, b)
    var = acc * acc / 2.0
    return Solution(Estimate(x, y, acc), tuple(1.0 for _ in anchors), (var, 0.0, var))


def _pair(anchors: list[Anchor], b: Bounds) -> Solution:
    """Two receivers: a point on the baseline; off the baseline the geometry cannot tell."""
    a1, a2 = anchors
    f = a1.distance_m / (a1.distance_m + a2.distance_m)
    x, y = _clamp(a1.x_m + f * (a2.x_m - a1.x_m), a1.y_m + f * (a2.y_m - a1.y_m), b)
    baseline = math.hypot(a2.x_m - a1.x_m, a2.y_m - a1.y_m)
    along = abs(a1.distance_m + a2.distance_m - baseline) / 2.0  # how far the circles fail to meet
    acc = max(min(a1.distance_m, a2.distance_m), along, a1.sigma_m, a2.sigma_m)
    var = acc * acc / 2.0
    return Solution(Estimate(x, y, acc), (1.0, 1.0), (var, 0.0, var))


def _robust(anchors: list[Anchor], b: Bounds, prior: Estimate | None,
            fixed_weights: Sequence[float] | None, long_t: float, short_t: float, edge_mean: bool) -> Solution:
    n = len(anchors)
    ax = [a.x_m for a in anchors]
    ay = [a.y_m for a in anchors]
    # Ranges: residual ln(d) - ln(r) over the relative sigma. Position-like anchors: (d - r) / sigma.
    linear = [_position_like(a) for a in anchors]
    dist = [a.distance_m for a in anchors]
    lnd = [math.log(a.distance_m) for a in anchors]
    inv_s = [1.0 / a.sigma_m if lin else 1.0 / max(MIN_REL_SIGMA, a.sigma_m / a.distance_m)
             for a, lin in zip(anchors, linear, strict=True)]
    eps2 = MIN_DISTANCE_M * MIN_DISTANCE_M

    # Start: weighted centroid (near receivers pull hardest), or the prior when there is one.
    if prior is not None:
        x, y = _clamp(prior.x_m, prior.y_m, b)
        ip2 = 1.0 / (prior.accuracy_m * prior.accuracy_m)
    else:
        cw = [1.0 / (a.sigma_m ** 2 if lin else a.distance_m ** 2) for a, lin in zip(anchors, linear, strict=True)]
        sw = sum(cw)
        x, y = _clamp(sum(w * v for w, v in zip(cw, ax, strict=True)) / sw,
                      sum(w * v for w, v in zip(cw, ay, strict=True)) / sw, b)
        ip2 = 0.0
    # Keeps the 2 x 2 system solvable when receivers are collinear: a prior of the plan's size.
    span2 = max(1.0, (b[2] - b[0]) ** 2 + (b[3] - b[1]) ** 2, max(a.distance_m for a in anchors) ** 2)
    ridge = 1.0 / span2

    w = list(fixed_weights) if fixed_weights is not None else [1.0] * n
    if len(w) != n:
        raise BadReading(f"weights: one per anchor ({n}), got {len(w)}")
    a11 = a12 = a22 = 0.0
    for _ in range(MAX_ITERATIONS):
        a11 = a12 = a22 = g1 = g2 = 0.0
        for i in range(n):
            dx, dy = x - ax[i], y - ay[i]
            r2 = dx * dx + dy * dy + eps2
            if linear[i]:
                r = math.sqrt(r2)
                e = (dist[i] - r) * inv_s[i]
                k = -inv_s[i] / r
            else:
                e = (lnd[i] - 0.5 * math.log(r2)) * inv_s[i]
                k = -inv_s[i] / r2  # d e / d p = k * (dx, dy)
            if fixed_weights is None:
                w[i] = _weight(e, long_t, short_t)
            jx, jy = k * dx, k * dy
            wi = w[i]
            a11 += wi * jx * jx
            a12 += wi * jx * jy
            a22 += wi * jy * jy
            g1 += wi * jx * e
            g2 += wi * jy * e
        if prior is not None:
            a11 += ip2
            a22 += ip2
            g1 += ip2 * (x - prior.x_m)
            g2 += ip2 * (y - prior.y_m)
        m11, m22 = a11 + ridge, a22 + ridge
        det = m11 * m22 - a12 * a12
        sx = -(m22 * g1 - a12 * g2) / det
        sy = -(m11 * g2 - a12 * g1) / det
        nx, ny = _clamp(x + sx, y + sy, b)
        moved = math.hypot(nx - x, ny - y)
        x, y = nx, ny
        if moved < STEP_TOLERANCE_M:
            break

    # Covariance of the measurement alone (prior excluded), inflated when residuals disagree.
    # The residual/gradient lines repeat the loop above on purpose: a shared helper function cost
    # ~25 % of fixes/s (27.6k -> 20k, bench positioning.locate_per_s) on the aggregator's hot path.
    chi2 = 0.0
    h11 = h12 = h22 = 0.0
    for i in range(n):
        dx, dy = x - ax[i], y - ay[i]
        r2 = dx * dx + dy * dy + eps2
        if linear[i]:
            r = math.sqrt(r2)
            e = (dist[i] - r) * inv_s[i]
            k = -inv_s[i] / r
        else:
            e = (lnd[i] - 0.5 * math.log(r2)) * inv_s[i]
            k = -inv_s[i] / r2
        jx, jy = k * dx, k * dy
        h11 += w[i] * jx * jx
        h12 += w[i] * jx * jy
        h22 += w[i] * jy * jy
        chi2 += w[i] * e * e
    dof = max(0, n - 2)
    scale = (chi2 + 2.0) / (dof + 2.0)  # shrunk towards 1: with 3-4 receivers chi2 alone is too noisy
    h11 += ridge
    h22 += ridge
    det = h11 * h22 - h12 * h12
    vx, vxy, vy = h22 / det * scale, -h12 / det * scale, h11 / det * scale
    acc = math.sqrt(max(vx + vy, 1e-6))
    if edge_mean and (x in (b[0], b[2]) or y in (b[1], b[3])):
        x, y = _off_the_edge(b, x, y, (ax, ay, lnd, dist, inv_s, linear), w, (h11, h12, h22, det), (vx, vy))
    return Solution(Estimate(x, y, acc), tuple(w), (vx, vxy, vy))


def _off_the_edge(b: Bounds, x: float, y: float, terms: tuple[list, ...], w: Sequence[float],
                  hessian: tuple[float, float, float, float], var: tuple[float, float]) -> tuple[float, float]:
    """A fit stopped by the plan's edge, replaced per stopped axis by its mean inside the plan.

    Only lone fixes that end on an edge pay for this (4 % on the boundary track, 8 of the speed
    benchmark's 61 diagonal-walk fixes), so the gradient is computed here, not in the hot loop.
    """
    ax, ay, lnd, dist, inv_s, linear = terms
    g1 = g2 = 0.0
    eps2 = MIN_DISTANCE_M * MIN_DISTANCE_M
    for i, wi in enumerate(w):
        dx, dy = x - ax[i], y - ay[i]
        r2 = dx * dx + dy * dy + eps2
        if linear[i]:
            r = math.sqrt(r2)
            e, k = (dist[i] - r) * inv_s[i], -inv_s[i] / r
        else:
            e, k = (lnd[i] - 0.5 * math.log(r2)) * inv_s[i], -inv_s[i] / r2
        g1 += wi * k * dx * e
        g2 += wi * k * dy * e
    h11, h12, h22, det = hessian
    # Where the fit would go without the wall: one unclamped Gauss-Newton step from here.
    fx, fy = x - (h22 * g1 - h12 * g2) / det, y - (h11 * g2 - h12 * g1) / det
    if x in (b[0], b[2]):
        x = _mean_inside(fx, math.sqrt(var[0]), b[0], b[2])
    if y in (b[1], b[3]):
        y = _mean_inside(fy, math.sqrt(var[1]), b[1], b[3])
    return x, y


def _upper_tail(t: float) -> float:
    return 0.5 * math.erfc(t / math.sqrt(2.0))


def _mean_inside(mu: float, sd: float, lo: float, hi: float) -> float:
    """Mean of a Gaussian (``mu``, ``sd``) of one axis restricted to ``lo..hi``.

    The posterior mean under a flat prior over the plan: a fit that runs into a wall is pulled back
    inside by about the fit's own uncertainty, never by a constant or towards a fixed point. On the
    reference scenario it cut the lone-fix p95 by ~0.2-0.3 m on both tracks (docs/POSITIONING.md).
    """
    if not (sd > 0 and math.isfinite(mu)) or hi <= lo:
        return min(max(mu, lo), hi) if math.isfinite(mu) else (lo + hi) / 2.0
    a, b = (lo - mu) / sd, (hi - mu) / sd
    # The tail on the side of mu keeps precision when mu lies many sigmas outside.
    mass = _upper_tail(a) - _upper_tail(b) if a > 0 else _upper_tail(-b) - _upper_tail(-a)
    if mass < 1e-300:  # beyond ~37 sigmas: the exponential-tail limit
        m = lo + sd * sd / (lo - mu) if mu < lo else hi - sd * sd / (mu - hi)
    else:
        m = mu + sd * (math.exp(-0.5 * a * a) - math.exp(-0.5 * b * b)) / (math.sqrt(2.0 * math.pi) * mass)
    return min(max(m, lo), hi)
