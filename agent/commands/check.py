"""``floorwalker-agent check``: validate a device file (and its store) without touching hardware."""

from __future__ import annotations

import argparse
import json

from agent.config import load_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="validate a device file and its store file, print a summary",
                       description="Load and validate a device file and the store file it names. "
                                   "Prints a JSON summary; a bad file prints one line naming the file and "
                                   "field and exits with 78.")
    p.add_argument("--config", required=True, metavar="DEVICE", help="device file (TOML)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = load_device(args.config)
    mqtt = device.mqtt.with_env()  # a bad MQTT_PORT is blamed on the environment here, not first in `run`
    summary = {
        "agent": device.agent_id,
        "store": device.store.id,
        "sniffers": [s.id for s in device.sniffers],
        "pirs": [p.id for p in device.pirs],
        "door": device.door.id if device.door else None,
        "broker": f"{mqtt.host}:{mqtt.port}",  # as `run` will use it: MQTT_HOST/MQTT_PORT override the file
        "secret_is_placeholder": device.store.secret_is_placeholder,
    }
    print(json.dumps(summary))
    return 0
