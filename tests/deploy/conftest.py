"""Fixtures of the deploy tests: the scripts under deploy/, a store broker set up by them.

Nothing here touches the machine's /etc, /opt or systemd: the broker directory, install roots and
unit checks all live under pytest's temporary directories.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator.embedded_broker import Broker, find_mosquitto, free_port, start_mosquitto

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BROKER_SCRIPT = DEPLOY / "mosquitto" / "floorwalker-broker.sh"

# Accounts of the test store: name -> (role, password)
ACCOUNTS = {
    "agent-1": ("agent", "pw-agent-1"),
    "agent-2": ("agent", "pw-agent-2"),
    "aggregator": ("aggregator", "pw-aggregator"),
    "viewer": ("reader", "pw-viewer"),
}


def run(*args: str | Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a deploy script; on an unexpected failure show its output in the assertion."""
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{args[0]} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@dataclass
class StoreBroker:
    """A mosquitto running the configuration floorwalker-broker.sh generated."""

    dir: Path
    port: int
    broker: Broker

    @property
    def ca_file(self) -> str:
        return str(self.dir / "ca.crt")

    def creds(self, name: str) -> dict[str, str]:
        return {"username": name, "password": ACCOUNTS[name][1], "ca_file": self.ca_file}


def setup_broker_dir(directory: Path, port: int) -> None:
    run(BROKER_SCRIPT, "init", "--dir", directory, "--port", str(port), "--host", "broker.store.test")
    for name, (role, password) in ACCOUNTS.items():
        extra = ["--client-cert"] if name == "agent-1" else []
        run(BROKER_SCRIPT, "add-account", name, "--role", role, "--password", password, "--dir", directory, *extra)


def start_store_broker(directory: Path, port: int, workdir: Path) -> Broker:
    """Mosquitto with exactly the generated conf (plus the harness's log and persistence lines)."""
    conf = (directory / "mosquitto.conf").read_text().splitlines()
    return start_mosquitto(port, host="127.0.0.1", listener=False, extra_conf=conf, workdir=workdir)


@pytest.fixture(scope="module")
def store_broker() -> Iterator[StoreBroker]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: the broker security tests need the real broker")
    # Started as root, mosquitto drops to its own user before reading the password file, as on a
    # store server: the directory must be reachable by it (pytest's tmp dirs are 0700), and the
    # script's group permissions must suffice. So: a world-traversable temporary directory.
    base = Path(tempfile.mkdtemp(prefix="fw-deploy-broker-"))
    try:
        base.chmod(0o755)
        port = free_port()
        setup_broker_dir(base / "etc", port)
        run_dir = base / "run"
        run_dir.mkdir()
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("mosquitto")
                os.chown(run_dir, pw.pw_uid, pw.pw_gid)
            except KeyError:
                pass  # no mosquitto user: mosquitto stays root
        broker = start_store_broker(base / "etc", port, run_dir)
        try:
            yield StoreBroker(base / "etc", port, broker)
        finally:
            broker.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
