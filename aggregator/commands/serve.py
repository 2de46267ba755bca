"""``floorwalker-aggregator serve``: the central service (MQTT ingest, SQLite, HTTP API, WebSockets, map)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from aiohttp import web

from agent.cliutil import resolve_config_dir, resolve_port, setup_logging, tcp_port
from aggregator.settings import Settings

log = logging.getLogger(__name__)

HELP = """\
Start the aggregator: subscribe to every agent of the store on the MQTT broker, validate and
deduplicate their reports, fuse them into one position per shopper, store everything in SQLite,
publish the retail demo's customer events, and serve the live map, HTTP API and WebSockets.

Broker: MQTT_HOST / MQTT_PORT (default localhost:1883), MQTT_USERNAME / MQTT_PASSWORD,
MQTT_BROKER_CERT_FILE (a CA file turns on TLS), MQTT_CLIENT_ID (default floorwalker-aggregator;
keep it fixed: the broker keeps this client's messages while it is down).
Store: FLOORWALKER_CONFIG_DIR (default ./firmware-config). API token: FLOORWALKER_API_TOKEN
(then every request except /health needs "Authorization: Bearer <token>").
Stop with Ctrl-C or SIGTERM: queued messages are committed and acknowledged first.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the aggregator service (ingest, storage, API, live map)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=tcp_port(0), default=None,
                   help="HTTP port (env PORT; default 8000; 0: any free port)")
    p.add_argument("--host", default=None,
                   help="address to listen on (env FLOORWALKER_HOST; default 127.0.0.1, this machine only; "
                        "0.0.0.0 for every interface, then set FLOORWALKER_API_TOKEN)")
    p.add_argument("--db", default=None, metavar="PATH",
                   help="SQLite database file (env FLOORWALKER_DB; default ./floorwalker.db)")
    p.add_argument("--config-dir", default=None, metavar="DIR",
                   help="configuration directory (env FLOORWALKER_CONFIG_DIR, default ./firmware-config; "
                        "an error if none of these exists)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aggregator.app import create_app

    port = resolve_port(args.port, 8000, low=0)  # a bad PORT is blamed on the environment, not ignored
    settings = Settings.from_env(http_port=port, http_host=args.host or os.environ.get("FLOORWALKER_HOST") or None,
                                 db_path=args.db, config_dir=resolve_config_dir(args.config_dir))
    setup_logging(args.log_level or settings.log_level, settings.log_filename or None)
    app = create_app(settings)
    # The MQTT connection and the SQLite writer run in processes of their own (docs/ARCHITECTURE.md), driven from the
    # event loop; in this one the loop shares the GIL only with the executor threads that answer
    # HTTP reads (and offers' writes). A 1 ms switch interval instead of 5 ms keeps one of them from holding
    # the loop back for long. (Measured when the MQTT link and the writer were still threads here: it cut the
    # publish -> WebSocket tail latency at a small cost in throughput; not measured again since.)
    sys.setswitchinterval(0.001)
    log.info("event=serve host=%s port=%d db=%s config_dir=%s broker=%s:%d", settings.http_host, settings.http_port,
             settings.db_path, settings.config_dir.resolve(), settings.mqtt.host, settings.mqtt.port)
    web.run_app(app, host=settings.http_host, port=settings.http_port, print=None, access_log=None,
                shutdown_timeout=5.0)
    return 0
