"""``floorwalker-chain serve``: the chain figures over HTTP and the chain dashboard page.

Read-only: it serves what the Flink job wrote (``--out``) and, when a chain broker is configured
(MQTT_HOST and friends), every store's live "in store now". Nothing here changes state, so there is
no token; it binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

from aiohttp import web

from agent.cliutil import tcp_port
from agent.config import MqttSettings
from aggregator.chain import results
from aggregator.chain.live import LiveChain, LiveSubscriber
from aggregator.http_errors import bad_request, error_middleware

WEB = Path(__file__).with_name("web")
OUT_DIR = web.AppKey("chain_out_dir", Path)
LIVE = web.AppKey("chain_live", LiveChain)
MQTT_SETTINGS: web.AppKey[MqttSettings | None] = web.AppKey("chain_mqtt")
routes = web.RouteTableDef()


def _date_param(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise bad_request(name, f"{name}: expected a date YYYY-MM-DD, got {raw[:40]!r}") from None


async def _results(request: web.Request) -> results.Results:
    return await asyncio.get_running_loop().run_in_executor(None, results.load, request.app[OUT_DIR])


@routes.get("/api/chain/daily")
async def daily(request: web.Request) -> web.Response:
    """Chain-wide figures per day (a person counted once across stores)."""
    first, last = _date_param(request, "from"), _date_param(request, "to")
    rows = [r for r in (await _results(request)).daily if r.get("store") == results.CHAIN]
    return web.json_response({"days": results.in_range(rows, first, last)})


@routes.get("/api/chain/stores")
async def stores(request: web.Request) -> web.Response:
    """Each store's figures per day, and its live "in store now" when a chain broker is connected."""
    first, last = _date_param(request, "from"), _date_param(request, "to")
    rows = [r for r in (await _results(request)).daily if r.get("store") != results.CHAIN]
    live = request.app[LIVE]
    return web.json_response({"days": results.in_range(rows, first, last), "live": live.stores(),
                              "live_connected": live.connected})


@routes.get("/api/chain/zones")
async def zones(request: web.Request) -> web.Response:
    """Zone ranking of one day (default the latest), chain-wide or of one store (``store=``)."""
    day = _date_param(request, "date")
    store = request.query.get("store", results.CHAIN)
    rows = (await _results(request)).zones
    if day is None and rows:
        day = max(str(r.get("date")) for r in rows)
    picked = [r for r in rows if r.get("date") == day and r.get("store") == store]
    return web.json_response({"date": day, "store": store, "zones": picked})


@routes.get("/")
async def page(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB / "chain.html")


routes.static("/static", WEB)


async def _live_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[MQTT_SETTINGS]
    subscriber = None
    if settings is not None:
        subscriber = LiveSubscriber(settings, app[LIVE])
        subscriber.start(asyncio.get_running_loop())
    try:
        yield
    finally:
        if subscriber is not None:
            await asyncio.get_running_loop().run_in_executor(None, subscriber.stop)


def create_chain_app(out_dir: Path, mqtt: MqttSettings | None = None) -> web.Application:
    app = web.Application(middlewares=[error_middleware])  # errors in the aggregator's JSON shape
    app[OUT_DIR] = out_dir
    app[LIVE] = LiveChain()
    app[MQTT_SETTINGS] = mqtt
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_live_ctx)
    return app


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the chain figures (/api/chain/...) and the chain dashboard page",
                       description="Serve what `floorwalker-chain batch` wrote: /api/chain/daily (chain-wide), "
                                   "/api/chain/stores (per store, with live 'in store now'), /api/chain/zones, and "
                                   "the chain page at /. Live figures come from the chain broker the stores bridge "
                                   "into (MQTT_HOST, MQTT_PORT, MQTT_USERNAME, MQTT_PASSWORD, MQTT_BROKER_CERT_FILE); "
                                   "without MQTT_HOST there are none.")
    p.add_argument("--out", default=os.environ.get("FLOORWALKER_CHAIN_OUT", "./chain-results"), metavar="DIR",
                   help="the results directory of the chain job (env FLOORWALKER_CHAIN_OUT, default ./chain-results)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=tcp_port(0), default=8090, help="port (default 8090)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    mqtt = MqttSettings().with_env() if os.environ.get("MQTT_HOST") else None
    web.run_app(create_chain_app(Path(args.out), mqtt), host=args.host, port=args.port, print=None)
    return 0


