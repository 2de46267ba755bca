"""In-process fan-out of :class:`ShopperEvent`: ingest publishes, offers/WebSockets/map subscribe.

Publishing never blocks and never waits for a slow consumer: each subscriber has a bounded
queue, and when it is full the event is dropped for that subscriber and counted (the
aiohttp-demo broadcaster's rule: one slow client must not stall the rest). Call ``publish``
only from the event loop's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aggregator.events import ShopperEvent


class Subscription:
    def __init__(self, bus: EventBus, kinds: frozenset[str] | None, maxsize: int) -> None:
        self.queue: asyncio.Queue[ShopperEvent] = asyncio.Queue(maxsize)
        self.kinds = kinds
        self.dropped = 0
        self._bus = bus

    async def get(self) -> ShopperEvent:
        return await self.queue.get()

    def get_nowait_all(self) -> list[ShopperEvent]:
        """Everything queued now, for consumers that batch (WebSocket frames)."""
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self.published = 0

    def subscribe(self, kinds: Iterable[str] | None = None, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, frozenset(kinds) if kinds is not None else None, maxsize)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, event: ShopperEvent) -> None:
        self.published += 1
        for sub in self._subs:
            if sub.kinds is not None and event.kind not in sub.kinds:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.dropped += 1

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self._subs)
