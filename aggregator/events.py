"""What happens to a shopper, inside the aggregator: one event type for the bus, the WebSockets and the map.

Ingest turns agent-tier messages into these after dedup and fusion; offers, the map and the
customer-tier publisher consume them. ``visitor`` is the id the outside world sees: the loyalty
customer id when the device is linked, else the hashed device id (SPEC section 4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# enter/move/exit/browsing: a shopper; offer: a coupon fired; agent: an agent went online/offline
# or reported health; door/motion: anonymous sensors.
KINDS = ("enter", "move", "exit", "browsing", "offer", "agent", "door", "motion")


@dataclass(slots=True)
class ShopperEvent:
    kind: str
    ts: float
    visitor: str = ""
    device: str = ""
    customer_id: str | None = None
    x: float | None = None
    y: float | None = None
    zone: str | None = None
    dep: str | None = None
    category: str | None = None
    state: str | None = None  # moving / browsing / offered, for the map's colours
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind, "ts": self.ts}
        for name in ("visitor", "device", "customer_id", "x", "y", "zone", "dep", "category", "state"):
            value = getattr(self, name)
            if value is not None and value != "":
                d[name] = round(value, 1) if name in ("x", "y") else value
        d["id"] = self.visitor  # seed 000's UI keys shoppers by "id"
        if self.extra:
            d.update(self.extra)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)
