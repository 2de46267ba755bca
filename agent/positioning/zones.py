"""Zone assignment with hysteresis: a shopper standing on a boundary does not flip back and forth.

A position estimate wobbles by tens of centimetres from fix to fix. Near the edge between two
zones (the seed-000 rectangles touch, 6 px apart) a plain ``plan.zone_at`` would flip the shopper
between departments every few seconds, which would restart dwell timers and spam "move" events.
The tracker keeps the current zone until the estimate is more than ``hysteresis_px`` outside it;
entering a zone from nowhere is immediate.
"""

from __future__ import annotations

import math

from agent.errors import BadReading
from agent.geometry import Plan, Point, Zone


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    ax, ay = b[0] - a[0], b[1] - a[1]
    length2 = ax * ax + ay * ay
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * ax + (p[1] - a[1]) * ay) / length2))
    return math.hypot(p[0] - a[0] - t * ax, p[1] - a[1] - t * ay)


def distance_outside(zone: Zone, p: Point) -> float:
    """0 inside (or on the edge of) ``zone``, else the distance to its nearest edge."""
    if zone.contains(p):
        return 0.0
    poly = zone.polygon
    return min(_segment_distance(p, poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly)))


def _is_rectangle(zone: Zone) -> bool:
    """Its polygon is its bounding box (the seed-000 zones are), walked around without crossing."""
    x0, y0, x1, y1 = zone.bbox
    poly = zone.polygon
    if len(poly) != 4 or x0 >= x1 or y0 >= y1 or set(poly) != {(x0, y0), (x1, y0), (x1, y1), (x0, y1)}:
        return False
    # Every edge axis-aligned: the corners in order around it, not as a bow tie.
    return all(a[0] == b[0] or a[1] == b[1] for a, b in zip(poly, poly[1:] + poly[:1], strict=True))


class ZoneTracker:
    """The zone a moving point is in, with a dead band of ``hysteresis_px`` around the current zone."""

    __slots__ = ("_rectangles", "current", "hysteresis_px", "plan")

    def __init__(self, plan: Plan, *, hysteresis_px: float = 25.0) -> None:
        if not (hysteresis_px >= 0 and math.isfinite(hysteresis_px)):
            raise ValueError(f"hysteresis_px must be a finite number >= 0, got {hysteresis_px!r}")
        self.plan = plan
        self.hysteresis_px = float(hysteresis_px)
        self.current: Zone | None = None
        # For a rectangle, Zone.contains (bounding box, then point-in-polygon with inclusive edges)
        # is exactly the bounding-box test; the aggregator asks for every fused fix.
        self._rectangles = {id(z) for z in plan.zones if _is_rectangle(z)}

    def update(self, x_px: float, y_px: float) -> Zone | None:
        """The zone for this new estimate (plan pixels)."""
        p = (float(x_px), float(y_px))
        if not (math.isfinite(p[0]) and math.isfinite(p[1])):
            raise BadReading(f"position: finite plan pixels, got ({x_px!r}, {y_px!r})")
        current = self.current
        if current is not None and (self._contains(current, p) or distance_outside(current, p) <= self.hysteresis_px):
            return current
        self.current = self._zone_at(p)
        return self.current

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
