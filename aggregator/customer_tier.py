"""The customer tier: consolidated enter/move/exit/browsing in seed 000's shapes, on its topics.

Integers for ``ts``, ``x`` and ``y`` (seed 000's UI used them as pixels and epoch seconds), ``id``
the loyalty customer id when the device is linked, else the hashed device id. Moves are
rate-limited per shopper (at least ``min_interval_s`` apart or ``min_px`` away) so the tier
carries what a map needs, not every Kalman step. Each publish also becomes a ``customer_events``
row, so what went out can be audited and paginated later.

Moves go out at QoS 0, the rest at QoS 1: a position is superseded by the next one a second later,
so re-sending a stale one after an outage helps nobody, while a lost enter, exit or browsing
would leave a consumer with a wrong picture until the visit ends. (QoS 1 also costs the broker
and paho a PUBACK round trip per message: at thousands of moves per second that was a quarter
of the aggregator's CPU.)
"""

from __future__ import annotations

import math
from typing import Any

from agent.contract import CustomerEvent, CustomerTopics, encode_customer
from aggregator.mqtt_link import Publisher


class CustomerTier:
    def __init__(self, publisher: Publisher, topics: CustomerTopics, *, min_interval_s: float = 1.0,
                 min_px: float = 20.0) -> None:
        self.publisher = publisher
        self.topics = topics
        self.min_interval_s = min_interval_s
        self.min_px = min_px
        self.published: dict[str, int] = {"enter": 0, "move": 0, "exit": 0, "browsing": 0}
        self.suppressed_moves = 0
        self._last_move: dict[str, tuple[float, float, float]] = {}

    def enter(self, visitor: str, ts: float, x: float | None = None, y: float | None = None) -> tuple[Any, ...]:
        self._last_move.pop(visitor, None)
        return self._send("enter", CustomerEvent("enter", visitor, ts, x, y))

    def move(self, visitor: str, ts: float, x: float, y: float) -> tuple[Any, ...] | None:
        """Publish unless the shopper moved too little too soon; returns the row or None."""
        last = self._last_move.get(visitor)
        if last is not None:
            lts, lx, ly = last
            if ts - lts < self.min_interval_s and math.hypot(x - lx, y - ly) <= self.min_px:
                self.suppressed_moves += 1
                return None
        self._last_move[visitor] = (ts, x, y)
        return self._send("move", CustomerEvent("move", visitor, ts, x, y))

    def exit(self, visitor: str, ts: float) -> tuple[Any, ...]:
        self._last_move.pop(visitor, None)
        return self._send("exit", CustomerEvent("exit", visitor, ts))

    def browsing(self, visitor: str, ts: float, x: float, y: float, dep: str) -> tuple[Any, ...]:
        return self._send("browsing", CustomerEvent("browsing", visitor, ts, x, y, dep))

    def _send(self, kind: str, event: CustomerEvent) -> tuple[Any, ...]:
        self.publisher.publish(getattr(self.topics, kind), encode_customer(event), qos=0 if kind == "move" else 1)
        self.published[kind] += 1
        x = round(event.x) if event.x is not None and kind in ("move", "browsing") else None
        y = round(event.y) if event.y is not None and kind in ("move", "browsing") else None
        # customer_events(ts, kind, visitor, x, y, dep)
        return (event.ts, kind, event.id, x, y, event.dep if kind == "browsing" else None)
