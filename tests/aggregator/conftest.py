"""Fixtures for the aggregator: settings pointing at a real broker and a real SQLite file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.config import MqttSettings
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from tests.conftest import CONFIG_DIR


@pytest.fixture
def settings(sqlite_path: Path, mqtt_broker: Broker, tmp_path: Path) -> Settings:
    """Aggregator settings on the test's broker and database, with a unique client id."""
    return replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path,
                   mqtt=MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port),
                   client_id=f"agg-{tmp_path.name[-12:]}", dwell_s=2.0, absence_s=30.0, passerby_s=5.0)


async def wait_until(predicate, timeout_s: float = 10.0, interval_s: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` on the loop until true (raises TimeoutError). It may be a coroutine function
    (an HTTP request, say): its result is awaited."""
    import asyncio
    import inspect
    import time

    async def holds() -> object:
        result = predicate()
        return await result if inspect.isawaitable(result) else result

    deadline = time.monotonic() + timeout_s
    while not await holds():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout_s} s")
        await asyncio.sleep(interval_s)


async def acking_link(settings: MqttSettings, client_id: str, topics: list[str]):  # type: ignore[no-untyped-def]
    """A started, subscribed :class:`~aggregator.mqtt_link.MqttLink` that records every message it
    receives (``link, received``) and acknowledges it at once, as the store does after a commit."""
    import asyncio

    from aggregator.mqtt_link import Incoming, MqttLink

    received: list[Incoming] = []
    links: list[MqttLink] = []

    def on_batch(items: list[Incoming]) -> None:
        received.extend(items)
        links[0].ack([(i.mid, i.qos) for i in items])

    link = MqttLink(settings, client_id, topics, on_batch=on_batch)
    links.append(link)
    link.start(asyncio.get_running_loop())
    await wait_until(lambda: link.subscribed)
    return link, received
