"""``floorwalker-agent run``: the agent on a sensor Pi, with its real serial sniffers and GPIO."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from agent.config import load_device
from agent.errors import EXIT_CONFIG, EXIT_NOINPUT, EXIT_UNAVAILABLE, NoGpio, SerialPortUnavailable
from agent.publisher import Publisher
from agent.runtime import AgentRuntime

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run the agent on this Pi: read sniffers and sensors, publish to the broker",
        description="Run the edge agent with the sensors declared in the device file: Wi-Fi sniffers on their "
                    "serial ports, PIR sensors and the door counter on GPIO. MAC addresses are hashed at once. "
                    "While the broker is unreachable, messages wait in the spool file and are sent in order later. "
                    "Exit codes: 66 serial port missing, 69 no GPIO on this machine, 77 broker refused the "
                    "credentials, 78 configuration error (including the CHANGE-ME store secret).")
    p.add_argument("--config", required=True, metavar="DEVICE",
                   help="device file, e.g. firmware-config/devices/agent-1.toml")
    p.add_argument("--record", metavar="FILE", type=Path,
                   help="also write every reading to FILE (JSON lines, MACs already hashed) for `replay`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = load_device(args.config)
    if device.store.secret_is_placeholder:
        print(f"floorwalker-agent: {device.store.path}: store.secret is still the CHANGE-ME placeholder; set a "
              "secret of your own (e.g. `openssl rand -hex 32`) in store.toml or FLOORWALKER_STORE_SECRET "
              "before running on real sensors (`mock` accepts the placeholder)", file=sys.stderr)
        return EXIT_CONFIG
    recorder = open(args.record, "a", encoding="utf-8") if args.record else None
    publisher = Publisher.for_device(device)
    runtime = AgentRuntime(device, publisher, recorder=recorder,
                           spool_stats=lambda: (publisher.spool.depth, publisher.spool.dropped))
    try:
        try:
            runtime.open()
        except NoGpio as exc:
            print(f"floorwalker-agent: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        except SerialPortUnavailable as exc:
            print(f"floorwalker-agent: serial port missing: {exc}", file=sys.stderr)
            return EXIT_NOINPUT
        publisher.start()
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        runtime.run(stop)
        return 0
    finally:
        runtime.close()
        publisher.stop()
        publisher.spool.close()
        if recorder is not None:
            recorder.close()
