"""Store visits: per-agent enter/exit merged into one visit per shopper.

Several agents hear the same phone; each sends its own enter and exit. The first report of a
device opens the visit; it closes when every agent that reported the device has sent an exit,
or when nothing was heard for ``absence_s`` (a phone that left without a goodbye: agents may be
offline, or the last agent's exit was lost). A visit shorter than ``passerby_s`` is a passer-by
(someone who only walked past the window), not a visitor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Visit:
    visit_id: str
    device: str
    visitor: str
    customer_id: str | None
    start_ts: float
    last_seen_ts: float
    end_ts: float | None = None
    passerby: bool = False
    agents_seen: set[str] = field(default_factory=set)
    agents_exited: set[str] = field(default_factory=set)

    def row(self, seq: int) -> tuple[Any, ...]:
        """The ``visits`` table row (visit_id, visitor, device, customer_id, start_ts, end_ts,
        last_seen_ts, passerby, seq)."""
        return (self.visit_id, self.visitor, self.device, self.customer_id, self.start_ts, self.end_ts,
                self.last_seen_ts, int(self.passerby), seq)


class VisitTracker:
    """Open visits by device; the event loop owns it."""

    def __init__(self, *, passerby_s: float = 120.0, absence_s: float = 180.0) -> None:
        self.passerby_s = passerby_s
        self.absence_s = absence_s
        self.open: dict[str, Visit] = {}

    def seen(self, device: str, agent: str, ts: float, visitor: str, customer_id: str | None) -> tuple[Visit, bool]:
        """Record a report; returns the visit and whether it was opened now."""
        visit = self.open.get(device)
        if visit is None:
            visit = Visit(f"{device}@{ts:.3f}", device, visitor, customer_id, ts, ts)
            visit.agents_seen.add(agent)
            self.open[device] = visit
            return visit, True
        visit.agents_seen.add(agent)
        visit.agents_exited.discard(agent)
        if ts > visit.last_seen_ts:
            visit.last_seen_ts = ts
        return visit, False

    def exit(self, device: str, agent: str, ts: float) -> Visit | None:
        """An agent's exit; returns the visit when that was the last agent still seeing it."""
        visit = self.open.get(device)
        if visit is None:
            return None
        visit.agents_exited.add(agent)
        if visit.agents_seen <= visit.agents_exited:
            return self._close(visit, max(ts, visit.last_seen_ts))
        return None

    def sweep(self, now: float) -> list[Visit]:
        """Close visits not heard from for ``absence_s``; they end when last heard."""
        cutoff = now - self.absence_s
        stale = [v for v in self.open.values() if v.last_seen_ts < cutoff]
        return [self._close(v, v.last_seen_ts) for v in stale]

    def restore(self, visit: Visit) -> None:
        """An open visit from the database at start-up (which agents saw it is not known)."""
        self.open[visit.device] = visit

    def _close(self, visit: Visit, end_ts: float) -> Visit:
        del self.open[visit.device]
        visit.end_ts = end_ts
        visit.passerby = (end_ts - visit.start_ts) < self.passerby_s
        return visit
