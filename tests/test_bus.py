"""The event bus fans out by kind and drops (counting) for a full subscriber instead of blocking."""

from __future__ import annotations

from aggregator.bus import EventBus
from aggregator.events import ShopperEvent


async def test_fan_out_by_kind() -> None:
    bus = EventBus()
    every, browsing = bus.subscribe(), bus.subscribe({"browsing"})
    bus.publish(ShopperEvent("move", 1.0, "v1", x=1.234, y=2.0))
    bus.publish(ShopperEvent("browsing", 2.0, "v1", dep="Men"))
    assert [e.kind for e in every.get_nowait_all()] == ["move", "browsing"]
    assert (await browsing.get()).dep == "Men" and browsing.queue.empty()


async def test_slow_subscriber_drops_and_counts() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=2)
    for i in range(5):
        bus.publish(ShopperEvent("move", float(i), "v"))
    assert slow.queue.qsize() == 2 and slow.dropped == 3 and bus.dropped == 3
    slow.close()
    bus.publish(ShopperEvent("move", 9.0, "v"))
    assert bus.published == 6


def test_event_json_has_seed000_id() -> None:
    e = ShopperEvent("move", 5.0, "7", device="d-1", customer_id="7", x=10.26, y=3.0, zone="Men's")
    assert e.to_dict() == {"type": "move", "ts": 5.0, "visitor": "7", "device": "d-1", "customer_id": "7",
                           "x": 10.3, "y": 3.0, "zone": "Men's", "id": "7"}
