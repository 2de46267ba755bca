"""``floorwalker-aggregator check``: validate the store file and every device file of a deployment."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from agent.cliutil import resolve_config_dir
from agent.config import load_deployment
from agent.errors import ConfigError
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
    settings, env_file = _service_settings(config_dir)
    store = devices[0].store
    summary: dict[str, object] = {"config_dir": str(config_dir.resolve()), "store": store.id,
                                  "zones": [z.name for z in store.plan.zones], "agents": [d.agent_id for d in devices],
                                  "broker": f"{settings.mqtt.host}:{settings.mqtt.port}",
                                  "environment_file": str(env_file) if env_file else None}
    if not getattr(args, "coverage", False):
        print(json.dumps(summary))
        return 0
    report = coverage(devices)
    summary["coverage"] = report.as_json()
    print(json.dumps(summary))
    return 0 if report.zones_ok else 1


SERVICE_ENV_FILE = "aggregator.env"  # deploy/install-aggregator.sh writes it beside store.toml; the unit reads it


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments, blank lines, optional quotes)."""
    values: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(str(path), f"line {n}", "KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _service_settings(config_dir: Path) -> tuple[Settings, Path | None]:
    """The settings `serve` will run with: this shell's environment, overlaid by the service's aggregator.env
    when the configuration directory has one (as systemd gives it to the service). A bad value is blamed on
    the file it came from, or on the environment."""
    path = config_dir.resolve() / SERVICE_ENV_FILE
    if not path.is_file():
        return Settings.from_env(), None
    from_file = read_env_file(path)
    try:
        return Settings.from_env({**os.environ, **from_file}), path
    except ConfigError as exc:
        if exc.file == "environment" and exc.field in from_file:
            raise ConfigError(str(path), exc.field, exc.expected) from None
        raise
