"""Per visitor and local day: the hours they were seen, the zones they were in and how often they entered.

One function computes these facts for both the incremental path (one visitor-day at a time)
and the from-scratch recompute (all of a visitor's rows at once), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from aggregator.analytics.definitions import LocalClock


@dataclass(slots=True)
class DayFacts:
    """What one visitor did on one local day (only counted sightings: not of a passer-by visit)."""

    hours: set[int] = field(default_factory=set)
    zone_entries: dict[str, int] = field(default_factory=dict)  # zone seen that day -> entries that day

    def favourite(self) -> tuple[str | None, int]:
        """Zone with most entries; ties go to the alphabetically first zone name."""
        if not self.zone_entries:
            return None, 0
        zone = min(self.zone_entries, key=lambda z: (-self.zone_entries[z], z))
        return zone, self.zone_entries[zone]

    def zones_entered_more_than_once(self) -> list[str]:
        return sorted(z for z, n in self.zone_entries.items() if n > 1)


def visitor_day_facts(rows: Iterable[tuple[float, str | None]], clock: LocalClock, zone_gap_s: float,
                      days: Collection[str] | None = None) -> dict[str, DayFacts]:
    """Facts per local day from one visitor's counted sightings ``(ts, zone)`` sorted by ts.

    A sighting in zone Z at ts is an entry when the visitor's previous sighting in Z is at least
    ``zone_gap_s`` earlier (or there is none). Duplicates (same ts) are never a second entry.
    ``rows`` must include every sighting from ``zone_gap_s`` before the first requested day, so
    an entry at 00:03 is judged against 23:58 the day before. ``days=None`` means every day."""
    facts: dict[str, DayFacts] = {}
    last_in_zone: dict[str, float] = {}
    for ts, zone in rows:
        day, hour = clock.day_hour(ts)
        wanted = days is None or day in days
        if wanted:
            f = facts.get(day)
            if f is None:
                f = facts[day] = DayFacts()
            f.hours.add(hour)
        if zone:
            previous = last_in_zone.get(zone)
            entry = previous is None or ts - previous >= zone_gap_s
            last_in_zone[zone] = ts
            if wanted:
                f.zone_entries[zone] = f.zone_entries.get(zone, 0) + (1 if entry else 0)
    return facts
