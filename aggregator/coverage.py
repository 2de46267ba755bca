"""Which parts of the plan too few sniffers hear: what ``floorwalker-aggregator check --coverage`` reports.

Multilateration needs at least three ranges to fix a point; with two it has two candidates, with
one only a circle. A sniffer *hears* a point when its calibration (the install walk test, run
forwards) puts a phone there at least ``FADE_DB`` above the agent's ``rssi_floor_dbm``: probes
weaker than the floor are dropped as the street, and shadowing takes a few dB off at random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agent.config import DeviceConfig
from agent.errors import BadReading
from agent.positioning.calibration import LogDistanceModel
from agent.presence import PHONE_HEIGHT_M

# Two sigmas of the 4 dB shadowing the positioning benchmark simulates (docs/POSITIONING.md):
# a sniffer counts only where a 2-sigma fade still leaves the probe above the floor.
FADE_DB = 8.0
MIN_SNIFFERS = 3
GRID_M = 1.0


@dataclass(frozen=True, slots=True)
class Coverage:
    """Per zone (and the aisle) the share of grid points heard by at least ``MIN_SNIFFERS`` sniffers."""

    covered_pct: dict[str, float]
    thin_points_px: list[tuple[int, int, int]]  # (x, y, sniffers) of under-covered grid points

    def as_json(self, limit: int = 50) -> dict[str, object]:
        return {"min_sniffers": MIN_SNIFFERS, "grid_m": GRID_M, "fade_db": FADE_DB,
                "covered_pct": self.covered_pct, "thin_points": len(self.thin_points_px),
                "thin_points_px": [list(p) for p in self.thin_points_px[:limit]]}

    @property
    def zones_ok(self) -> bool:
        return all(pct == 100.0 for name, pct in self.covered_pct.items() if name != "aisle")


def coverage(devices: Sequence[DeviceConfig]) -> Coverage:
    """Count, on a ``GRID_M`` grid over the plan, the sniffers that hear each point."""
    plan = devices[0].store.plan
    hearers = []
    for device in devices:
        for sniffer in device.sniffers:
            try:
                model = LogDistanceModel.fit(sniffer.calibration)
            except BadReading:
                continue
            floor_dbm = device.presence.rssi_floor_dbm + FADE_DB
            reach_m = 10 ** ((model.rssi_at_1m - floor_dbm) / (10.0 * model.n))  # slant distance
            floor_reach_m = math.sqrt(max(reach_m ** 2 - (sniffer.height_m - PHONE_HEIGHT_M) ** 2, 0.0))
            hearers.append((sniffer.position_px, floor_reach_m / plan.metres_per_px))
    step_px = GRID_M / plan.metres_per_px
    totals: dict[str, list[int]] = {}
    thin: list[tuple[int, int, int]] = []
    for i in range(int(plan.height_px / step_px) + 1):
        for j in range(int(plan.width_px / step_px) + 1):
            p = (j * step_px, i * step_px)
            count = sum(1 for (sx, sy), reach in hearers if math.hypot(p[0] - sx, p[1] - sy) <= reach)
            zone = plan.zone_at(p)
            seen = totals.setdefault(zone.name if zone else "aisle", [0, 0])
            seen[0] += 1
            if count >= MIN_SNIFFERS:
                seen[1] += 1
            else:
                thin.append((round(p[0]), round(p[1]), count))
    return Coverage({name: round(100.0 * ok / n, 1) for name, (n, ok) in totals.items()}, thin)
