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


class ZoneTracker:
    """The zone a moving point is in, with a dead band of ``hysteresis_px`` around the current zone."""

    __slots__ = ("current", "hysteresis_px", "plan")

    def __init__(self, plan: Plan, *, hysteresis_px: float = 25.0) -> None:
        if not (hysteresis_px >= 0 and math.isfinite(hysteresis_px)):
            raise ValueError(f"hysteresis_px must be a finite number >= 0, got {hysteresis_px!r}")
        self.plan = plan
        self.hysteresis_px = float(hysteresis_px)
        self.current: Zone | None = None

    def update(self, x_px: float, y_px: float) -> Zone | None:
        """The zone for this new estimate (plan pixels)."""
        p = (float(x_px), float(y_px))
        if not (math.isfinite(p[0]) and math.isfinite(p[1])):
            raise BadReading(f"position: finite plan pixels, got ({x_px!r}, {y_px!r})")
        current = self.current
        if current is not None and (current.contains(p) or distance_outside(current, p) <= self.hysteresis_px):
            return current
        self.current = self.plan.zone_at(p)
        return self.current

    def reset(self) -> None:
        self.current = None
