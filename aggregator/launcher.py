"""``floorwalker``: the whole system on one machine, in one command.

An MQTT broker (mosquitto if installed, else the embedded amqtt) unless ``MQTT_HOST`` names
one, the aggregator, and one mock agent per device file of the deployment, all simulating the
same shoppers. Each part is a child process, as it would be in a store; Ctrl-C stops them all.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agent.cliutil import (
    CONFIG_DIR_ENV,
    CONFIG_DIR_NAME,
    LOG_LEVELS,
    int_at_least,
    log_level,
    package_version,
    resolve_config_dir,
    resolve_log_level,
    resolve_port,
    tcp_port,
)
from agent.config import DeviceConfig, default_state_dir, load_deployment
from agent.errors import EXIT_CONFIG, ConfigError
from aggregator.embedded_broker import Broker, start_broker

OPENS_AFTER_S = 10.0  # the broker, the aggregator and four agents are up and subscribed well within this
# The same default as `floorwalker-aggregator serve` and `generate`, so generated history shows on the map.
DEFAULT_DB = "floorwalker.db"


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="floorwalker",
        description="Start the whole Floorwalker system on this machine: an MQTT broker (unless MQTT_HOST is "
                    "set), the aggregator with the live map, and mock agents with simulated shoppers.")
    p.add_argument("--version", action="version", version=f"floorwalker {package_version()}",
                   help="print the version and exit")
    p.add_argument("--port", type=tcp_port(), default=None,
                   help="HTTP port of the map and API (env PORT; default 8000)")
    p.add_argument("--host", default=None,
                   help="address the map and API listen on (env FLOORWALKER_HOST; default 127.0.0.1, this machine "
                        "only; 0.0.0.0 for every interface, then set FLOORWALKER_API_TOKEN)")
    p.add_argument("--shoppers", type=int_at_least(1), default=20,
                   help="simulated shoppers in the store at a time (default 20)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the simulation (default 1)")
    p.add_argument("--config-dir", type=Path, default=None,
                   help="configuration directory (env FLOORWALKER_CONFIG_DIR; default ./firmware-config, else the "
                        "demo store shipped with Floorwalker, and it says which it uses)")
    p.add_argument("--db", default=os.environ.get("FLOORWALKER_DB"),
                   help=f"SQLite file (env FLOORWALKER_DB; default ./{DEFAULT_DB}, as serve and generate)")
    p.add_argument("--broker-port", type=tcp_port(), default=None,
                   help="port of the embedded broker (default 1883 if free)")
    p.add_argument("--log-level", type=log_level, default=None, metavar="LEVEL",
                   help=f"{', '.join(LOG_LEVELS)} for every part (env LOG_LEVEL; default INFO)")
    return p


def _config_dir(given: Path | None) -> tuple[Path, str]:
    """The directory the demo runs on and a note saying why; the packaged demo store only when nothing else is."""
    if given or os.environ.get(CONFIG_DIR_ENV) or (Path.cwd() / CONFIG_DIR_NAME).is_dir():
        return resolve_config_dir(given).resolve(), ""
    packaged = Path(__file__).resolve().parent.parent / CONFIG_DIR_NAME
    return packaged, f" (the demo store shipped with Floorwalker: there is no ./{CONFIG_DIR_NAME} here)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        level = resolve_log_level(args.log_level)
        args.port = resolve_port(args.port, 8000)  # a bad PORT is blamed on the environment
        config_dir, note = _config_dir(args.config_dir)
        devices = load_deployment(config_dir)
    except ConfigError as exc:
        print(f"floorwalker: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"floorwalker: configuration {config_dir}{note}", flush=True)
    state_dir = default_state_dir().resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    db = args.db or DEFAULT_DB
    print(f"floorwalker: database {Path(db).resolve()}", flush=True)

    broker: Broker | None = None
    env = dict(os.environ, FLOORWALKER_CONFIG_DIR=str(config_dir), FLOORWALKER_STATE_DIR=str(state_dir),
               FLOORWALKER_DB=db, LOG_LEVEL=level)
    if not os.environ.get("MQTT_HOST"):
        port = args.broker_port or (1883 if _port_free(1883) else None)
        broker = start_broker(port)
        env.update(MQTT_HOST=broker.host, MQTT_PORT=str(broker.port))
        print(f"floorwalker: MQTT broker ({broker.kind}) on {broker.host}:{broker.port}", flush=True)
    else:
        print(f"floorwalker: using MQTT broker {env['MQTT_HOST']}:{env.get('MQTT_PORT', '1883')}", flush=True)
    children = _start_children(args, devices, env, db)
    host = args.host or os.environ.get("FLOORWALKER_HOST") or "localhost"
    shown = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1") else host
    print(f"floorwalker: open http://{shown}:{args.port}/ for the live map (Ctrl-C stops everything)", flush=True)
    return _supervise(children, broker)


def _start_children(args: argparse.Namespace, devices: list[DeviceConfig], env: dict[str, str],
                    db: str) -> list[tuple[str, subprocess.Popen[bytes]]]:
    """The aggregator and one mock agent per device file, each a child process as in a store."""
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    py = sys.executable
    serve = [py, "-m", "aggregator.cli", "serve", "--port", str(args.port), "--db", db]
    if args.host:
        serve += ["--host", args.host]
    children.append(("aggregator", subprocess.Popen(serve, env=env)))
    # The simulated store opens empty a few seconds from now (staff inside), once everything is
    # connected, so the door counter and the occupancy estimate start from a true zero, as in a real store.
    opens_ts = time.time() + OPENS_AFTER_S
    for device in devices:
        children.append((device.agent_id, subprocess.Popen(
            [py, "-m", "agent.cli", "mock", "--config", str(device.path), "--seed", str(args.seed),
             "--shoppers", str(args.shoppers), "--opens-at", f"{opens_ts:.3f}"], env=env)))
    print(f"floorwalker: the simulated store opens in {OPENS_AFTER_S:.0f} s; 'in store now' on the map is the "
          "people estimate (docs/OCCUPANCY.md)", flush=True)
    return children


def _supervise(children: list[tuple[str, subprocess.Popen[bytes]]], broker: Broker | None) -> int:
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = 0
    try:
        while not stopping:
            for name, proc in children:
                if proc.poll() is not None:
                    print(f"floorwalker: {name} exited with {proc.returncode}; stopping everything", file=sys.stderr)
                    code = proc.returncode or 1
                    stopping = True
            time.sleep(0.2)
    finally:
        for _, proc in children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in children:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker is not None:
            broker.stop()
        print("floorwalker: stopped", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
