"""The customer tier: consolidated enter/move/exit/browsing in seed 000's shapes, on its topics.

Integers for ``ts``, ``x`` and ``y`` (seed 000's UI used them as pixels and epoch seconds). The
retail demo's services type ``id`` as an integer and look it up in customers.json, and log a
validation error for anything else (376 a minute in its demo), so ``customer/*`` carries only
known customers, with integer ids. Shoppers linked to no customer go out in the same shapes on
``floorwalker/<store>/shopper/<kind>`` with their hashed device id, or, with the store file's
``customer_tier.anonymous = "integer-ids"``, stay on ``customer/*`` with an integer id from a range
above every customer id (a hash of the device id: stable across restarts). Moves are
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

import hashlib
import math
from collections.abc import Mapping
from typing import Any

from agent.config import CustomerTierConfig
from agent.contract import (
    SHOPPER_KINDS,
    CustomerEvent,
    CustomerTopics,
    Prediction,
    encode_customer,
    encode_prediction,
    shopper_topic,
)
from agent.errors import ConfigError
from aggregator.mqtt_link import Publisher

ANONYMOUS_ID_SPAN = 10**9  # ids base .. base + 1e9 - 1: still 32-bit signed with the largest base allowed


class CustomerTier:
    """Publishes shoppers' enter/move/exit/browsing where the store file's ``[customer_tier]`` says."""

    def __init__(self, publisher: Publisher, topics: CustomerTopics, *, store_id: str = "demo",
                 config: CustomerTierConfig | None = None, min_interval_s: float = 1.0,
                 min_px: float = 20.0) -> None:
        self.publisher = publisher
        self.topics = topics.prefixed(config.prefix) if config else topics
        self.config = config or CustomerTierConfig()
        self.shopper_topics = {kind: shopper_topic(store_id, kind) for kind in SHOPPER_KINDS}
        self.known: dict[str, int] = {}  # customer id (as ingest names visitors) -> the integer the demo wants
        self.anonymous: dict[str, int] = dict.fromkeys(SHOPPER_KINDS, 0)
        self.min_interval_s = min_interval_s
        self.min_px = min_px
        self.published: dict[str, int] = dict.fromkeys(SHOPPER_KINDS, 0)
        self.suppressed_moves = 0
        self._last_move: dict[str, tuple[float, float, float]] = {}

    def know(self, customers: Mapping[str, Any], source: str = "customers file") -> None:
        """Take the loyalty customers whose ids the demo can parse (integers); others count as anonymous."""
        self.known = {cid: int(cid) for cid in customers if cid.isascii() and cid.isdigit()}
        top = max(self.known.values(), default=0)
        if self.config.anonymous == "integer-ids" and top >= self.config.anonymous_id_base:
            raise ConfigError(source, "customer_tier.anonymous_id_base",
                              f"above every customer id (the largest is {top}), got {self.config.anonymous_id_base}")

    def anonymous_id(self, visitor: str) -> int:
        """A stable integer for a shopper linked to no customer, in a range no customer id reaches."""
        digest = hashlib.blake2b(visitor.encode(), digest_size=8).digest()
        return self.config.anonymous_id_base + int.from_bytes(digest, "big") % ANONYMOUS_ID_SPAN

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

    def prediction(self, prediction: Prediction, **extra: Any) -> None:
        """Publish a fired offer as the retail demo's prediction, on the same rule as the other kinds: its
        ``customer.id`` an integer the demo can look up, else on the store's shopper topic."""
        target = str(prediction.customer_id)
        number = self.known.get(target)
        if number is None and self.config.anonymous == "integer-ids":
            number = self.anonymous_id(target)
        if number is not None:
            typed = Prediction(number, prediction.coupon, prediction.ts)
            self.publisher.publish(self.topics.prediction, encode_prediction(typed, **extra), qos=1)
        else:
            self.publisher.publish(self.shopper_topics["prediction"], encode_prediction(prediction, **extra), qos=1)
            self.anonymous["prediction"] += 1
        self.published["prediction"] += 1

    def _send(self, kind: str, event: CustomerEvent) -> tuple[Any, ...]:
        visitor = str(event.id)
        qos = 0 if kind == "move" else 1
        number = self.known.get(visitor)
        if number is None and self.config.anonymous == "integer-ids":
            number = self.anonymous_id(visitor)
            self.anonymous[kind] += 1
        if number is not None:
            typed = CustomerEvent(kind, number, event.ts, event.x, event.y, event.dep)  # orjson's fast path
            self.publisher.publish(getattr(self.topics, kind), encode_customer(typed), qos=qos)
        else:
            self.publisher.publish(self.shopper_topics[kind], encode_customer(event), qos=qos)
            self.anonymous[kind] += 1
        self.published[kind] += 1
        x = round(event.x) if event.x is not None and kind in ("move", "browsing") else None
        y = round(event.y) if event.y is not None and kind in ("move", "browsing") else None
        # customer_events(ts, kind, visitor, x, y, dep): the visitor as ingest names it, whatever went out
        return (event.ts, kind, visitor, x, y, event.dep if kind == "browsing" else None)
