"""``floorwalker-aggregator check``: validate the store file and every device file of a deployment."""

from __future__ import annotations

import argparse
import json

from agent.cliutil import resolve_config_dir
from agent.config import load_deployment
from aggregator.coverage import MIN_SNIFFERS, coverage
from aggregator.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="validate the deployment's configuration, print a summary",
                       description="Load firmware-config/store.toml and every devices/*.toml, checking "
                                   "each field and that agent ids are unique, and the service's environment "
                                   "variables (docs/CONFIG.md). Exits 78 on the first error, naming the file or "
                                   "the variable.")
    p.add_argument("--config-dir", default=None, metavar="DIR",
                   help="configuration directory (env FLOORWALKER_CONFIG_DIR, default ./firmware-config; "
                        "an error if none of these exists)")
    p.add_argument("--coverage", action="store_true",
                   help=f"also report which parts of the plan fewer than {MIN_SNIFFERS} sniffers hear (1 m grid); "
                        "exits 1 when part of a zone is among them")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config_dir = resolve_config_dir(args.config_dir)
    devices = load_deployment(config_dir)
    settings = Settings.from_env()  # the service's environment too: a bad MQTT_PORT fails here, not in `serve`
    store = devices[0].store
    summary: dict[str, object] = {"config_dir": str(config_dir.resolve()), "store": store.id,
                                  "zones": [z.name for z in store.plan.zones], "agents": [d.agent_id for d in devices],
                                  "broker": f"{settings.mqtt.host}:{settings.mqtt.port}"}
    if not getattr(args, "coverage", False):
        print(json.dumps(summary))
        return 0
    report = coverage(devices)
    summary["coverage"] = report.as_json()
    print(json.dumps(summary))
    return 0 if report.zones_ok else 1
