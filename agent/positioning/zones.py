"""Zone assignment with hysteresis: a shopper standing on a boundary does not flip back and forth.

A position estimate wobbles by tens of centimetres from fix to fix. Near the edge between two
zones (the seed-000 rectangles touch, 6 px apart) a plain ``plan.zone_at`` would flip the shopper
between departments every few seconds, which would restart dwell timers and spam "move" events.
The tracker keeps the current zone until the estimate is more than ``hysteresis_px`` outside it;
entering a zone from nowhere is immediate.

A fixed dead band is the wrong size most of the time: too small while the filter is unsure, too
large (a late switch) while it is sure. With ``confidence`` and the motion filter's state
(``update(..., motion=locator.motion)``) the band is also the filter's own doubt across the edge:
the current zone is kept until the filter puts at least ``confidence`` of its probability outside
it, unless the walker is plainly heading out (velocity across the edge beyond ``decisive_sigmas``
of its uncertainty), which is when a dead band only makes the switch late.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from agent.errors import BadReading
from agent.geometry import Plan, Point, Zone
from agent.positioning.motion import Motion

# The share of the filter's probability that must lie outside a room before the live decision
# leaves it, and how clear (in sigmas of the filter's velocity) a walk out must be to skip that
# wait. Chosen on development seeds 1..40 of the reference boundary track (0.7 / 0.8 / 0.9 x 1 / 2 /
# 3 sigmas); 0.75 and 0.85 were a point worse, a 4-sigma walk-out made the diagonal walk's single
# crossing late (docs/POSITIONING.md). Not the ZoneTracker's default (it needs the filter's state);
# the aggregator's fusion passes it (aggregator/fusion.py).
ROOM_CONFIDENCE = 0.8
DECISIVE_SIGMAS = 3.0


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    q = _nearest_on_segment(p, a, b)
    return math.hypot(p[0] - q[0], p[1] - q[1])


def distance_outside(zone: Zone, p: Point) -> float:
    """0 inside (or on the edge of) ``zone``, else the distance to its nearest edge."""
    if zone.contains(p):
        return 0.0
    poly = zone.polygon
    return min(_segment_distance(p, poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly)))


def distance_to_edge(zone: Zone, p: Point) -> float:
    """The distance from ``p`` to the zone's outline, inside or outside: how near an edge a shopper stands."""
    poly = zone.polygon
    return min(_segment_distance(p, poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly)))


def _nearest_on_segment(p: Point, a: Point, b: Point) -> Point:
    ax, ay = b[0] - a[0], b[1] - a[1]
    length2 = ax * ax + ay * ay
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * ax + (p[1] - a[1]) * ay) / length2))
    return (a[0] + t * ax, a[1] + t * ay)


def outward(zone: Zone, p: Point) -> tuple[float, float, float]:
    """(distance, nx, ny): how far ``p`` lies outside ``zone`` and the unit direction away from it.

    (0, 0, 0) inside or on the edge. The direction runs from the zone's nearest point to ``p``:
    the axis along which the filter's doubt decides whether the point really left.
    """
    if zone.contains(p):
        return (0.0, 0.0, 0.0)
    poly = zone.polygon
    nearest = min((_nearest_on_segment(p, poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))),
                  key=lambda q: math.hypot(p[0] - q[0], p[1] - q[1]))
    dx, dy = p[0] - nearest[0], p[1] - nearest[1]
    d = math.hypot(dx, dy)
    return (0.0, 0.0, 0.0) if d == 0 else (d, dx / d, dy / d)


def _is_rectangle(zone: Zone) -> bool:
    """Its polygon is its bounding box (the seed-000 zones are), walked around without crossing."""
    x0, y0, x1, y1 = zone.bbox
    poly = zone.polygon
    if len(poly) != 4 or x0 >= x1 or y0 >= y1 or set(poly) != {(x0, y0), (x1, y0), (x1, y1), (x0, y1)}:
        return False
    # Every edge axis-aligned: the corners in order around it, not as a bow tie.
    return all(a[0] == b[0] or a[1] == b[1] for a, b in zip(poly, poly[1:] + poly[:1], strict=True))


class ZoneTracker:
    """The zone a moving point is in, with a dead band around the current zone.

    The band is ``hysteresis_px``, or with ``confidence`` and a ``motion`` given to :meth:`update`,
    the larger of that and the filter's own uncertainty across the edge (see the module docstring).
    """

    __slots__ = ("_band_sigmas", "_rectangles", "confidence", "current", "decisive_sigmas", "hysteresis_px",
                 "plan")

    def __init__(self, plan: Plan, *, hysteresis_px: float = 25.0, confidence: float | None = None,
                 decisive_sigmas: float = DECISIVE_SIGMAS) -> None:
        if not (hysteresis_px >= 0 and math.isfinite(hysteresis_px)):
            raise ValueError(f"hysteresis_px must be a finite number >= 0, got {hysteresis_px!r}")
        if confidence is not None and not 0.5 <= confidence < 1.0:
            raise ValueError(f"confidence must be in [0.5, 1), got {confidence!r}")
        if not (decisive_sigmas > 0 and math.isfinite(decisive_sigmas)):
            raise ValueError(f"decisive_sigmas must be a positive number, got {decisive_sigmas!r}")
        self.plan = plan
        self.hysteresis_px = float(hysteresis_px)
        self.confidence = confidence
        self.decisive_sigmas = float(decisive_sigmas)
        # P(outside) >= confidence for a Gaussian across the edge: beyond this many sigmas out.
        self._band_sigmas = None if confidence is None else NormalDist().inv_cdf(confidence)
        self.current: Zone | None = None
        # For a rectangle, Zone.contains (bounding box, then point-in-polygon with inclusive edges)
        # is exactly the bounding-box test; the aggregator asks for every fused fix.
        self._rectangles = {id(z) for z in plan.zones if _is_rectangle(z)}

    def update(self, x_px: float, y_px: float, *, motion: Motion | None = None) -> Zone | None:
        """The zone for this new estimate (plan pixels).

        ``motion`` (``Locator.motion``, in metres) widens the dead band to the filter's doubt when
        the tracker has a ``confidence``; without either the band is ``hysteresis_px``.
        """
        p = (float(x_px), float(y_px))
        if not (math.isfinite(p[0]) and math.isfinite(p[1])):
            raise BadReading(f"position: finite plan pixels, got ({x_px!r}, {y_px!r})")
        current = self.current
        if current is not None and not self._contains(current, p):
            if motion is None or self._band_sigmas is None:
                if distance_outside(current, p) <= self.hysteresis_px:
                    return current
            else:
                out, nx, ny = outward(current, p)
                if out <= max(self.hysteresis_px, self._doubt_px(motion, nx, ny)):
                    return current
        elif current is not None:
            return current
        self.current = self._zone_at(p)
        return self.current

    def _doubt_px(self, motion: Motion, nx: float, ny: float) -> float:
        """How far out along (nx, ny) the point must be before the filter believes it left (pixels)."""
        if self._band_sigmas is None:
            return 0.0
        v_out = nx * motion.vx_mps + ny * motion.vy_mps
        sd_v = math.sqrt(max(nx * nx * motion.var_vx + ny * ny * motion.var_vy, 0.0))
        if v_out > self.decisive_sigmas * sd_v:
            return 0.0  # plainly walking out: waiting would only make the switch late
        sd_m = math.sqrt(max(nx * nx * motion.var_x + ny * ny * motion.var_y, 0.0))
        return self._band_sigmas * sd_m / self.plan.metres_per_px

    def _zone_at(self, p: Point) -> Zone | None:
        """``plan.zone_at`` with the rectangle shortcut: the first declared zone containing ``p``."""
        for zone in self.plan.zones:
            if self._contains(zone, p):
                return zone
        return None

    def _contains(self, zone: Zone, p: Point) -> bool:
        if id(zone) in self._rectangles:
            x0, y0, x1, y1 = zone.bbox
            return x0 <= p[0] <= x1 and y0 <= p[1] <= y1
        return zone.contains(p)

    def reset(self) -> None:
        self.current = None
