"""Dwell: a shopper who stays in one zone longer than a threshold is browsing there.

Reported once per zone stay: leaving the zone (hysteresis is already applied by the zone
tracker) resets it. Checked on every position and by the periodic sweep, because a phone that
stands still produces few reports — the shopper standing still is exactly the one browsing.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.geometry import Zone


@dataclass(slots=True)
class _Stay:
    zone: Zone
    since_ts: float
    reported: bool = False


class DwellTracker:
    def __init__(self, threshold_s: float = 30.0) -> None:
        self.threshold_s = threshold_s
        self._stays: dict[str, _Stay] = {}

    def update(self, visitor: str, zone: Zone | None, ts: float) -> Zone | None:
        """The shopper is in ``zone`` at ``ts``; returns the zone when browsing starts now."""
        stay = self._stays.get(visitor)
        if zone is None:
            self._stays.pop(visitor, None)
            return None
        if stay is None or stay.zone.name != zone.name:
            stay = _Stay(zone, ts)
            self._stays[visitor] = stay
        return self._check(stay, ts)

    def due(self, now: float) -> list[tuple[str, Zone]]:
        """Shoppers whose stay crossed the threshold by ``now`` without a new report."""
        return [(visitor, stay.zone) for visitor, stay in self._stays.items() if self._check(stay, now)]

    def in_zone_since(self, visitor: str) -> float | None:
        stay = self._stays.get(visitor)
        return stay.since_ts if stay else None

    def browsing(self, visitor: str) -> bool:
        stay = self._stays.get(visitor)
        return bool(stay and stay.reported)

    def rename(self, old: str, new: str) -> None:
        if old in self._stays:
            self._stays[new] = self._stays.pop(old)

    def forget(self, visitor: str) -> None:
        self._stays.pop(visitor, None)

    def _check(self, stay: _Stay, ts: float) -> Zone | None:
        if not stay.reported and ts - stay.since_ts >= self.threshold_s:
            stay.reported = True
            return stay.zone
        return None
