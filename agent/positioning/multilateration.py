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


# The anchors as the solver works on them: x, y, distance (floored at MIN_DISTANCE_M), sigma lists.
Columns = tuple[list[float], list[float], list[float], list[float]]
# What solve_checked returns: x_m, y_m, accuracy_m, robust weights, (var_x, cov_xy, var_y).
_Result = tuple[float, float, float, tuple[float, ...], tuple[float, float, float]]
# The solver's per-anchor constants (x, y, linear?, distance, ln(distance), 1/sigma) and centroid sums.
Terms = tuple[list[tuple[float, float, bool, float, float, float]], tuple[float, float, float]]


def columns(anchors: Sequence[Anchor]) -> Columns:
    """:func:`check_anchors` in the form the solver works on, cheaply for the common case.

    Floats within range pass with a few comparisons each (a NaN fails every comparison); anything
    else goes through :func:`check_anchors`, which converts it or raises the precise BadReading.
    """
    xs: list[float] = []
    ys: list[float] = []
    ds: list[float] = []
    ss: list[float] = []
    lim = MAX_ABS_M
    for a in anchors:
        x, y, d, s = a.x_m, a.y_m, a.distance_m, a.sigma_m
        if not (type(x) is float and type(y) is float and type(d) is float and type(s) is float
                and -lim <= x <= lim and -lim <= y <= lim and 0.0 <= d <= lim and 0.0 < s <= lim):
            checked = check_anchors(anchors)
            return ([a.x_m for a in checked], [a.y_m for a in checked],
                    [a.distance_m for a in checked], [a.sigma_m for a in checked])
        xs.append(x)
        ys.append(y)
        ds.append(MIN_DISTANCE_M if MIN_DISTANCE_M > d else d)  # max(d, MIN_DISTANCE_M), as check_anchors
        ss.append(s)
    if not xs:
        check_anchors(anchors)  # raises: no anchors
    return xs, ys, ds, ss


def check_prior(x_m: float, y_m: float, accuracy_m: float) -> tuple[float, float, float]:
    """A prior as :func:`solve_checked` takes it: finite metres, accuracy floored at 1 mm."""
    lim = MAX_ABS_M
    if not (type(x_m) is float and type(y_m) is float and type(accuracy_m) is float
            and -lim <= x_m <= lim and -lim <= y_m <= lim and -lim <= accuracy_m <= lim):
        x_m, y_m = _finite(x_m, "prior.x_m"), _finite(y_m, "prior.y_m")
        accuracy_m = _finite(accuracy_m, "prior.accuracy_m")
    return (x_m, y_m, 1e-3 if 1e-3 > accuracy_m else accuracy_m)  # max(1e-3, accuracy_m)


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
    cols = columns(anchors)
    b = check_bounds(bounds_m)
    p = None if prior is None else check_prior(prior.x_m, prior.y_m, prior.accuracy_m)
    x, y, acc, w, cov = solve_checked(cols, b, prior=p, weights=weights, long_threshold=long_threshold,
                                      short_threshold=short_threshold, edge_mean=edge_mean)
    return Solution(Estimate(x, y, acc), w, cov)


def solve_checked(cols: Columns, b: Bounds, *, prior: tuple[float, float, float] | None = None,
                  weights: Sequence[float] | None = None, long_threshold: float = LONG_THRESHOLD,
                  short_threshold: float = SHORT_THRESHOLD, edge_mean: bool = False,
                  weights_only: bool = False, terms: Terms | None = None,
                  linearize_at: tuple[float, float, float, float] | None = None) -> _Result:
    """:func:`solve` for numbers already validated: no checks here, garbage in, garbage out.

    For hot paths that validate once and solve more than once (the Locator solves every fix
    twice; the aggregator's fusion checks its contract-validated ranges itself). ``cols`` as
    :func:`columns` returns them (non-empty, finite, distances floored), ``b`` as
    :func:`check_bounds` does, ``prior`` an (x_m, y_m, accuracy_m > 0) tuple, ``weights`` one per
    anchor. Returns (x_m, y_m, accuracy_m, weights, cov) without building the dataclasses;
    ``weights_only`` skips the covariance (the Locator's prior-weighted pass needs only the weights);
    ``terms`` are :func:`anchor_terms` of ``cols``, when the caller already has them.
    ``linearize_at`` (a motion filter's prediction: x_m, y_m, var_x, var_y; 3+ receivers) takes the
    covariance's geometry at the point the filter's update will land on instead of at the fit
    itself (see :func:`_posterior_geometry`).
    """
    ax, ay = cols[0], cols[1]
    if ax.count(ax[0]) == len(ax) and ay.count(ay[0]) == len(ay):  # one place (list.count compares with ==)
        return _single(cols, b)
    if len(ax) == 2 and prior is None and not any(  # a position-like anchor (see _robust) needs the solver
            s > 2.0 * d for d, s in zip(cols[2], cols[3], strict=True)):
        return _pair(cols, b)
    if weights is not None and len(weights) != len(ax):  # for both loops below
        raise BadReading(f"weights: one per anchor ({len(ax)}), got {len(weights)}")
    edge_mean = edge_mean and prior is None
    return _robust(cols, b, prior, weights, long_threshold, short_threshold, edge_mean, weights_only, terms,
                   linearize_at)


def _single(cols: Columns, b: Bounds) -> _Result:
    """All readings from one place: we know the radius, not the direction."""
    ax, ay, dist, sig = cols
    w = [1.0 / (s ** 2) for s in sig]
    d = sum(wi * di for wi, di in zip(w, dist, strict=True)) / sum(w)
    acc = max(d, math.sqrt(1.0 / sum(w)))  # a position estimate's own sigma when it exceeds the distance
    x, y = _clamp(ax[0], ay[0], b)
    var = acc * acc / 2.0
    return x, y, acc, tuple(1.0 for _ in ax), (var, 0.0, var)


def _pair(cols: Columns, b: Bounds) -> _Result:
    """Two receivers: a point on the baseline; off the baseline the geometry cannot tell."""
    (x1, x2), (y1, y2), (d1, d2), (s1, s2) = cols
    f = d1 / (d1 + d2)
    x, y = _clamp(x1 + f * (x2 - x1), y1 + f * (y2 - y1), b)
    baseline = math.hypot(x2 - x1, y2 - y1)
    along = abs(d1 + d2 - baseline) / 2.0  # how far the circles fail to meet
    acc = max(min(d1, d2), along, s1, s2)
    var = acc * acc / 2.0
    return x, y, acc, (1.0, 1.0), (var, 0.0, var)


def anchor_terms(cols: Columns) -> Terms:
    """The solver's per-anchor constants for these columns, and the sums of its centroid start.

    Pass them to :func:`solve_checked` (``terms=``) to solve the same anchors again without
    recomputing them, as the Locator does for its second pass.
    """
    log = math.log
    # Ranges: residual ln(d) - ln(r) over the relative sigma. Position-like anchors: (d - r) / sigma.
    # An anchor whose uncertainty dwarfs its distance is a position estimate, not a range: the
    # aggregator passes an agent's own estimate this way (distance ~0, sigma = its accuracy); its
    # error is Gaussian in metres, not in dB, so it gets a linear residual, not a log one.
    terms: list[tuple[float, float, bool, float, float, float]] = []
    # The centroid start's sums, weights 1/d^2 (near receivers pull hardest), or 1/sigma^2.
    sw = swx = swy = 0.0
    for xi, yi, d, s in zip(*cols, strict=True):
        if s > 2.0 * d:
            terms.append((xi, yi, True, d, log(d), 1.0 / s))
            c = 1.0 / (s ** 2)
        else:
            rel = s / d
            terms.append((xi, yi, False, d, log(d), 1.0 / (rel if rel > MIN_REL_SIGMA else MIN_REL_SIGMA)))
            c = 1.0 / (d ** 2)
        sw += c
        swx += c * xi
        swy += c * yi
    return terms, (sw, swx, swy)


def _robust(cols: Columns, b: Bounds, prior: tuple[float, float, float] | None,
            fixed_weights: Sequence[float] | None, long_t: float, short_t: float, edge_mean: bool,
            weights_only: bool, prepared: Terms | None,
            linearize_at: tuple[float, float, float, float] | None = None) -> _Result:
    # The aggregator's hot path (two solves per fused report): local names, _weight and _clamp
    # written out, and (w * j) products shared between the sums, in the same order as a plain
    # loop would compute them, so the results are the same to the last bit.
    n, dist = len(cols[0]), cols[2]
    log, sqrt, hypot = math.log, math.sqrt, math.hypot
    bx0, by0, bx1, by1 = b
    terms, (sw, swx, swy) = anchor_terms(cols) if prepared is None else prepared
    eps2 = MIN_DISTANCE_M * MIN_DISTANCE_M

    # Start: weighted centroid, or the prior when there is one.
    if prior is not None:
        px, py, pacc = prior
        x, y = _clamp(px, py, b)
        ip2 = 1.0 / (pacc * pacc)
    else:
        px = py = 0.0
        x, y = _clamp(swx / sw, swy / sw, b)
        ip2 = 0.0
    # Keeps the 2 x 2 system solvable when receivers are collinear: a prior of the plan's size.
    span2 = max(1.0, (bx1 - bx0) ** 2 + (by1 - by0) ** 2, max(dist) ** 2)
    ridge = 1.0 / span2

    estimate = fixed_weights is None
    w = [1.0] * n if estimate else list(fixed_weights)  # one per anchor: solve_checked checked
    neg_short = -short_t
    for _ in range(MAX_ITERATIONS):
        a11 = a12 = a22 = g1 = g2 = 0.0
        if estimate:  # the same sums as below, with each anchor's weight from its residual
            w = []
            for xi, yi, lin, di, li, si in terms:
                dx, dy = x - xi, y - yi
                r2 = dx * dx + dy * dy + eps2
                if lin:
                    r = sqrt(r2)
                    e = (di - r) * si
                    k = -si / r
                else:
                    e = (li - 0.5 * log(r2)) * si
                    k = -si / r2  # d e / d p = k * (dx, dy)
                if e > long_t:
                    wi = long_t / e
                elif e < neg_short:
                    wi = neg_short / e
                else:
                    wi = 1.0
                w.append(wi)
                jx, jy = k * dx, k * dy
                wjx, wjy = wi * jx, wi * jy
                a11 += wjx * jx
                a12 += wjx * jy
                a22 += wjy * jy
                g1 += wjx * e
                g2 += wjy * e
        else:
            for (xi, yi, lin, di, li, si), wi in zip(terms, w, strict=True):
                dx, dy = x - xi, y - yi
                r2 = dx * dx + dy * dy + eps2
                if lin:
                    r = sqrt(r2)
                    e = (di - r) * si
                    k = -si / r
                else:
                    e = (li - 0.5 * log(r2)) * si
                    k = -si / r2
                jx, jy = k * dx, k * dy
                wjx, wjy = wi * jx, wi * jy
                a11 += wjx * jx
                a12 += wjx * jy
                a22 += wjy * jy
                g1 += wjx * e
                g2 += wjy * e
        if prior is not None:
            a11 += ip2
            a22 += ip2
            g1 += ip2 * (x - px)
            g2 += ip2 * (y - py)
        m11, m22 = a11 + ridge, a22 + ridge
        det = m11 * m22 - a12 * a12
        nx = x - (m22 * g1 - a12 * g2) / det
        ny = y - (m11 * g2 - a12 * g1) / det
        if bx0 > nx:  # min(max(nx, bx0), bx1), as comparisons
            nx = bx0
        if bx1 < nx:
            nx = bx1
        if by0 > ny:
            ny = by0
        if by1 < ny:
            ny = by1
        moved = hypot(nx - x, ny - y)
        x, y = nx, ny
        if moved < STEP_TOLERANCE_M:
            break
    if weights_only:
        return x, y, 0.0, tuple(w), (0.0, 0.0, 0.0)

    # Covariance of the measurement alone (prior excluded), inflated when residuals disagree.
    # The residual/gradient lines repeat the loop above on purpose: a shared helper function cost
    # ~25 % of fixes/s (27.6k -> 20k, bench positioning.locate_per_s) on the aggregator's hot path.
    chi2 = 0.0
    h11 = h12 = h22 = 0.0
    for (xi, yi, lin, di, li, si), wi in zip(terms, w, strict=True):
        dx, dy = x - xi, y - yi
        r2 = dx * dx + dy * dy + eps2
        if lin:
            r = sqrt(r2)
            e = (di - r) * si
            k = -si / r
        else:
            e = (li - 0.5 * log(r2)) * si
            k = -si / r2
        jx, jy = k * dx, k * dy
        wjx, wjy = wi * jx, wi * jy
        h11 += wjx * jx
        h12 += wjx * jy
        h22 += wjy * jy
        chi2 += wi * e * e
    dof = max(0, n - 2)
    scale = (chi2 + 2.0) / (dof + 2.0)  # shrunk towards 1: with 3-4 receivers chi2 alone is too noisy
    h11 += ridge
    h22 += ridge
    det = h11 * h22 - h12 * h12
    vx, vxy, vy = h22 / det * scale, -h12 / det * scale, h11 / det * scale
    if linearize_at is not None:
        vx, vxy, vy = _posterior_geometry(terms, w, x, y, (vx, vy), linearize_at, ridge, scale)
    acc = sqrt(max(vx + vy, 1e-6))
    if edge_mean and (x in (bx0, bx1) or y in (by0, by1)):
        x, y = _off_the_edge(b, x, y, terms, w, (h11, h12, h22, det), (vx, vy))
    return x, y, acc, tuple(w), (vx, vxy, vy)


def _posterior_geometry(terms: list[tuple[float, float, bool, float, float, float]], w: Sequence[float],
                        x: float, y: float, var: tuple[float, float], predicted: tuple[float, float, float, float],
                        ridge: float, scale: float) -> tuple[float, float, float]:
    """The fit's covariance with its geometry taken where the motion filter's update will land.

    How well receivers pin a point depends on where the point is (close to a receiver a dB is a
    few centimetres, far from all of them it is tens). Taken at the fit itself, that makes a fix's
    weight depend on its own error: fixes that err towards the well-covered middle of the
    receivers look more precise and count more, so the track is pulled towards the middle. On the
    reference boundary track the live filter trailed the walker by 0.2-0.27 m over its last
    3 s in the bedroom (mean over development seeds 1..40) though the fixes there were unbiased
    within +-0.08 m. The filter's prediction does not depend on this fix's error, but at a turn
    or at start-up it is far from the truth; the point the Kalman update lands on (prediction
    moved towards the fix by the per-axis gain, the fit's own covariance giving the gain) is
    close to the truth in both cases. The chi^2 scale stays the fit's own (how much these
    receivers disagree is a property of the fit, not of the place). Kept after 2 iterations
    were tried (no better: docs/POSITIONING.md).
    """
    px, py, pvx, pvy = predicted
    vx, vy = var
    mx = px + pvx / (pvx + vx) * (x - px) if pvx + vx > 0 else x
    my = py + pvy / (pvy + vy) * (y - py) if pvy + vy > 0 else y
    eps2 = MIN_DISTANCE_M * MIN_DISTANCE_M
    h11 = h12 = h22 = 0.0
    for (xi, yi, lin, _, _, si), wi in zip(terms, w, strict=True):
        dx, dy = mx - xi, my - yi
        r2 = dx * dx + dy * dy + eps2
        k = -si / math.sqrt(r2) if lin else -si / r2
        jx, jy = k * dx, k * dy
        h11 += wi * jx * jx
        h12 += wi * jx * jy
        h22 += wi * jy * jy
    h11 += ridge
    h22 += ridge
    det = h11 * h22 - h12 * h12
    return h22 / det * scale, -h12 / det * scale, h11 / det * scale


def _off_the_edge(b: Bounds, x: float, y: float, terms: list[tuple[float, float, bool, float, float, float]],
                  w: Sequence[float],
                  hessian: tuple[float, float, float, float], var: tuple[float, float]) -> tuple[float, float]:
    """A fit stopped by the plan's edge, replaced per stopped axis by its mean inside the plan.

    Only lone fixes that end on an edge pay for this (4 % on the boundary track, 8 of the speed
    benchmark's 61 diagonal-walk fixes), so the gradient is computed here, not in the hot loop.
    """
    g1 = g2 = 0.0
    eps2 = MIN_DISTANCE_M * MIN_DISTANCE_M
    for (xi, yi, lin, di, li, si), wi in zip(terms, w, strict=True):
        dx, dy = x - xi, y - yi
        r2 = dx * dx + dy * dy + eps2
        if lin:
            r = math.sqrt(r2)
            e, k = (di - r) * si, -si / r
        else:
            e, k = (li - 0.5 * math.log(r2)) * si, -si / r2
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
