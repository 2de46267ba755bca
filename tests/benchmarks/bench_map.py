"""Does the live map keep up? 500 shoppers moving, 2,000 updates/s, measured inside headless Chromium.

The real aggregator app (no MQTT: this measures the map, not ingest) serves the page and its
/ws/movement; a coroutine on the app's loop publishes ShopperEvents on the bus at the target rate,
each stamped with the wall-clock time it was published. The page applies everything queued since
the last animation frame and draws once per frame; its hooks (``window.__fw.stats``) count frames
and record, per frame, publish-to-draw lag of the oldest event drawn.

Figures: ``map.fps`` (frames drawn per second under load), ``map.lag_ms`` (p95 publish-to-draw lag
of the drawn events: server queue + WebSocket + parse + apply + draw), ``map.lag_ms_p50``,
``map.events_per_s`` (events the page applied per second: falls short of the offered rate when the
page or the socket cannot keep up) and ``map.shoppers`` (dots on the plan at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from aggregator.app import create_app
from aggregator.appkeys import BUS, STORE_CONFIG
from aggregator.embedded_broker import free_port
from aggregator.events import ShopperEvent
from aggregator.settings import Settings
from tests.benchmarks.figures import Figure
from tests.conftest import CONFIG_DIR

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]
SHOPPERS = 500
RATE_PER_S = 2000
TICK_S = 0.01


class Server:
    """The aggregator app on its own loop in a thread, and a load generator on that loop."""

    def __init__(self, db_path: Path) -> None:
        self.port = free_port()
        self.app = create_app(replace(Settings(), config_dir=CONFIG_DIR, db_path=db_path, mqtt_enabled=False))
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.app)
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-map-loop", daemon=True)
        self.published = 0
        self._load: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def start_load(self, shoppers: int, rate_per_s: int, seed: int = 1) -> None:
        async def begin() -> None:
            self._load = asyncio.get_running_loop().create_task(self._publish(shoppers, rate_per_s, seed))
        asyncio.run_coroutine_threadsafe(begin(), self.loop).result(10)

    async def _publish(self, shoppers: int, rate_per_s: int, seed: int) -> None:
        """Random walks inside the plan; enters first, then moves round-robin at ``rate_per_s``."""
        bus = self.app[BUS]
        plan = self.app[STORE_CONFIG].plan
        rng = random.Random(seed)
        pos = [[rng.uniform(100, plan.width_px - 100), rng.uniform(100, plan.height_px - 100)] for _ in range(shoppers)]
        for i, (x, y) in enumerate(pos):
            bus.publish(ShopperEvent("enter", time.time(), visitor=f"bench-{i}", x=x, y=y, state="moving"))
        start = time.monotonic()
        sent = 0
        i = 0
        while True:
            due = int((time.monotonic() - start) * rate_per_s)
            now = time.time()
            while sent < due:
                p = pos[i]
                p[0] = min(max(p[0] + rng.uniform(-25, 25), 0.0), plan.width_px)
                p[1] = min(max(p[1] + rng.uniform(-25, 25), 0.0), plan.height_px)
                zone = plan.zone_at((p[0], p[1]))
                state = "browsing" if i % 7 == 0 else "moving"
                bus.publish(ShopperEvent("move", now, visitor=f"bench-{i}", x=p[0], y=p[1],
                                         zone=zone.name if zone else None, state=state))
                sent += 1
                i = (i + 1) % shoppers
            self.published = sent
            await asyncio.sleep(TICK_S)

    def stop(self) -> None:
        async def end() -> None:
            if self._load is not None:
                self._load.cancel()
                try:
                    await self._load
                except asyncio.CancelledError:
                    pass
            await self.runner.cleanup()
        asyncio.run_coroutine_threadsafe(end(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def run(args: argparse.Namespace) -> Iterator[Figure]:
    from playwright.sync_api import sync_playwright

    seconds = 5.0 if args.quick else 15.0
    with tempfile.TemporaryDirectory(prefix="bench-map-") as tmp:
        server = Server(Path(tmp) / "bench.db")
        server.start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    errors: list[str] = []
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    page.goto(f"http://127.0.0.1:{server.port}/")
                    page.wait_for_function("window.__fw && window.__fw.ready", timeout=30_000)
                    page.wait_for_selector("#conn.conn-open", timeout=10_000)
                    server.start_load(SHOPPERS, RATE_PER_S)
                    page.wait_for_timeout(2000)  # warm-up: everyone has entered, caches are hot
                    js = ("() => { const s = window.__fw.stats; return {frames: s.frames, events: s.events, "
                          "t: performance.now(), lags: s.lagSamples.length, shoppers: s.shoppers, "
                          "wsFrames: s.wsFrames, applyMs: s.applyMs, drawMs: s.drawMs}; }")
                    before = page.evaluate(js)
                    # Only this run's samples: forget the warm-up's.
                    page.evaluate("() => { window.__fw.stats.lagSamples.length = 0; }")
                    published0 = server.published
                    page.wait_for_timeout(int(seconds * 1000))
                    after = page.evaluate(js)
                    lags = page.evaluate("() => window.__fw.stats.lagSamples.slice()")
                    published = server.published - published0
                    page.screenshot(path=str(Path(tmp) / "bench-map.png"))
                finally:
                    browser.close()
        finally:
            server.stop()
    elapsed_s = (after["t"] - before["t"]) / 1000.0
    fps = (after["frames"] - before["frames"]) / elapsed_s
    events_per_s = (after["events"] - before["events"]) / elapsed_s
    note = f"{SHOPPERS} shoppers, {published / seconds:,.0f} events/s offered over {seconds:g} s; " \
           f"{(after['wsFrames'] - before['wsFrames']) / elapsed_s:,.0f} WebSocket frames/s"
    note += f"; per frame: apply {after['applyMs']:.1f} ms, draw {after['drawMs']:.1f} ms"
    if errors:
        note += f"; page errors: {errors[:3]}"
    yield Figure("map.fps", round(fps, 1), "frames/s", target=">= 30", note=note)
    yield Figure("map.lag_ms", _percentile(lags, 0.95), "ms", target="<= 250",
                 note=f"p95 publish-to-draw over {len(lags)} frames")
    yield Figure("map.lag_ms_p50", _percentile(lags, 0.5), "ms")
    yield Figure("map.events_per_s", round(events_per_s), "events/s", target=f">= {int(RATE_PER_S * 0.95)}")
    yield Figure("map.shoppers", after["shoppers"], "dots", target=f">= {SHOPPERS}")
