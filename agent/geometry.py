"""Plan geometry: pixels <-> metres, which zone a point is in, distances.

The store plan is a picture: origin top-left, y grows downward, units are pixels. Radio
models work in metres, so every conversion goes through one ``Plan`` object that knows the
scale. Zones are polygons with inclusive edges; when zones share an edge, the first declared
zone wins (the seed-000 demo's rectangles touch, and its lookup was first-match).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Point = tuple[float, float]


def distance(a: Point, b: Point) -> float:
    """Euclidean distance between two points, in whatever unit they share."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _on_segment(p: Point, a: Point, b: Point, eps: float = 1e-9) -> bool:
    cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    if abs(cross) > eps * max(1.0, distance(a, b)):
        return False
    return (
        min(a[0], b[0]) - eps <= p[0] <= max(a[0], b[0]) + eps
        and min(a[1], b[1]) - eps <= p[1] <= max(a[1], b[1]) + eps
    )


def point_in_polygon(p: Point, polygon: Sequence[Point]) -> bool:
    """True when ``p`` is inside ``polygon`` or on its edge (edges are inclusive)."""
    n = len(polygon)
    inside = False
    x, y = p
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        if _on_segment(p, a, b):
            return True
        if (a[1] > y) != (b[1] > y):
            x_cross = a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if x < x_cross:
                inside = not inside
    return inside


@dataclass(frozen=True, slots=True)
class Zone:
    """A named area of the plan: ``category`` drives offers (clothing, shoes/sport, ...)."""

    name: str
    category: str
    polygon: tuple[Point, ...]
    department: str = ""
    bbox: tuple[float, float, float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        object.__setattr__(self, "bbox", (min(xs), min(ys), max(xs), max(ys)))

    def contains(self, p: Point) -> bool:
        x0, y0, x1, y1 = self.bbox
        if not (x0 <= p[0] <= x1 and y0 <= p[1] <= y1):
            return False
        return point_in_polygon(p, self.polygon)

    @property
    def centroid(self) -> Point:
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        return (sum(xs) / len(xs), sum(ys) / len(ys))


@dataclass(frozen=True, slots=True)
class Plan:
    """The store plan's size and scale, with the zones drawn on it."""

    width_px: int
    height_px: int
    metres_per_px: float
    zones: tuple[Zone, ...] = ()

    def px_to_m(self, p: Point) -> Point:
        return (p[0] * self.metres_per_px, p[1] * self.metres_per_px)

    def m_to_px(self, p: Point) -> Point:
        return (p[0] / self.metres_per_px, p[1] / self.metres_per_px)

    def length_px_to_m(self, length_px: float) -> float:
        return length_px * self.metres_per_px

    def length_m_to_px(self, length_m: float) -> float:
        return length_m / self.metres_per_px

    def contains(self, p: Point) -> bool:
        return 0 <= p[0] <= self.width_px and 0 <= p[1] <= self.height_px

    def clamp(self, p: Point) -> Point:
        """The nearest point of the plan: estimates never leave the store."""
        return (min(max(p[0], 0.0), float(self.width_px)), min(max(p[1], 0.0), float(self.height_px)))

    def zone_at(self, p: Point) -> Zone | None:
        """The first declared zone containing ``p`` (inclusive edges), or None."""
        for zone in self.zones:
            if zone.contains(p):
                return zone
        return None

    def zone_named(self, name: str) -> Zone | None:
        for zone in self.zones:
            if zone.name == name:
                return zone
        return None


def polygon_area(polygon: Iterable[Point]) -> float:
    """Unsigned area (shoelace); zero means the polygon is degenerate."""
    pts = list(polygon)
    s = 0.0
    for i in range(len(pts)):
        a, b = pts[i], pts[(i + 1) % len(pts)]
        s += a[0] * b[1] - b[0] * a[1]
    return abs(s) / 2.0
