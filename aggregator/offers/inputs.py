"""Turning what arrives into engine :class:`Click` rows: seed 001's click stream and store browsing.

Seed 001's ``enriched-click-data`` rows carry ``timestamp`` (integer nanoseconds), ``userId``,
``productId``, ``category``, ``gender`` (M/F) and ``age``. A row that is not an object, or lacks a
timestamp, user or product, is a :class:`BadRow` (counted by callers, never a crash). A row without
gender or age is still a Click (the engine ignores it, as seed 001 does).

In the store a browsing (dwell) event is a click: the item is the zone (or a fixture cell inside
it, ``[store] item = "cell"``), the category is the zone's category mapped by the rules file
(clothing -> clothing, sport -> shoes), and gender and age come from the loyalty customer linked to
the device. Anonymous devices have neither, so they never qualify.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from agent.errors import FloorwalkerError
from aggregator.events import ShopperEvent
from aggregator.offers.engine import NS_PER_S, Click
from aggregator.offers.rules import StoreMapping


class BadRow(FloorwalkerError, ValueError):
    """A click-stream row that cannot be used; ``reason`` is a short tag for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


def click_from_row(row: Any) -> Click:
    """A seed-001 click-stream row (a decoded JSON object) as a Click. Raises BadRow."""
    if not isinstance(row, Mapping):
        raise BadRow("not-an-object", type(row).__name__)
    ts = row.get("timestamp")
    if isinstance(ts, str) and ts.strip().lstrip("-").isdigit():
        ts = int(ts)
    if isinstance(ts, float) and math.isfinite(ts):
        ts = int(ts)
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise BadRow("bad-timestamp", repr(ts)[:40])
    user = _text(row.get("userId"))
    item = _text(row.get("productId"))
    if user is None:
        raise BadRow("no-user")
    if item is None:
        raise BadRow("no-product")
    return Click(ts, user, item, _text(row.get("category")), gender_of(row.get("gender")), age_of(row.get("age")))


def click_from_browsing(event: ShopperEvent, customers: Mapping[str, Mapping[str, Any]],
                        mapping: StoreMapping) -> Click | None:
    """A browsing ShopperEvent as a Click; None when it has no zone (nothing to offer on)."""
    if not event.zone:
        return None
    customer = customers.get(str(event.customer_id)) if event.customer_id is not None else None
    gender = gender_of(customer.get("gender")) if customer else None
    age = age_of(customer.get("age")) if customer else None
    user = event.visitor or (str(event.customer_id) if event.customer_id is not None else event.device)
    return Click(round(event.ts * NS_PER_S), user, mapping.item_of(event.zone, event.x, event.y),
                 mapping.category_of(event.category), gender, age, event.zone, event.dep)


def gender_of(value: Any) -> str | None:
    text = _text(value)
    return text.upper() if text is not None else None


def age_of(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return int(value)
    return None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None  # pandas writes a missing value as NaN
    text = str(value).strip()
    return text or None
