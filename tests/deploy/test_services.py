"""The programs as their systemd units run them: environment from the installed env files,
sd_notify READY/WATCHDOG/STOPPING on a notify socket, TLS to the store broker, real subprocesses.

systemd itself is not running here, so the test plays its part: it reads the EnvironmentFile=s the
install script wrote (after the technician's edits: broker name, port, password), sets NOTIFY_SOCKET
and WATCHDOG_USEC as systemd does for Type=notify with WatchdogSec=, starts the console script, and
listens. The agent runs in mock mode (no sniffer or GPIO hardware here); everything else is the
real path: device file from /etc/floorwalker, spool under the state directory, TLS with the store CA.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import ACCOUNTS, DEPLOY, run
from tests.deploy.mqtt_tls import Session

pytestmark = pytest.mark.deploy

BIN = Path(sys.executable).parent


def set_env(path: Path, key: str, value: str) -> None:
    """What a technician does with sudoedit: set KEY=value in an env file."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.lstrip("#").startswith(f"{key}="):
            lines[i] = f"{key}={value}"
            break
    else:
        lines.append(f"{key}={value}")
    path.write_text("\n".join(lines) + "\n")


def read_env(*paths: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (later files win)."""
    env: dict[str, str] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", ";")) and "=" in line:
                key, value = line.split("=", 1)
                env[key.strip()] = value.strip()
    return env


class NotifySocket:
    """The datagram socket systemd listens on for sd_notify messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.received: list[str] = []

    def wait_for(self, state: str, timeout_s: float = 20.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout_s
        while self.received.count(state) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{state} x{count} not received in {timeout_s} s; got {self.received}")
            self.sock.settimeout(left)
            try:
                self.received.extend(self.sock.recv(4096).decode().split("\n"))
            except TimeoutError:
                continue

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def root(tmp_path: Path, store_broker) -> Path:
    """Agent and aggregator installed into a scratch root, env files edited for the test broker."""
    root = tmp_path / "root"
    run(DEPLOY / "install-agent.sh", "--root", root, "--no-venv", "--agent", "agent-1", "--ca", store_broker.ca_file)
    run(DEPLOY / "install-aggregator.sh", "--root", root, "--no-venv")
    etc = root / "etc/floorwalker"
    for name in ("agent.env", "aggregator.env"):
        set_env(etc / name, "MQTT_HOST", "localhost")
        set_env(etc / name, "MQTT_PORT", str(store_broker.port))
        set_env(etc / name, "MQTT_BROKER_CERT_FILE", str(etc / "ca.crt"))
        set_env(etc / name, "FLOORWALKER_CONFIG_DIR", str(etc))
        set_env(etc / name, "FLOORWALKER_STATE_DIR", str(root / "var/lib/floorwalker"))
    set_env(etc / "devices/agent-1.env", "MQTT_PASSWORD", ACCOUNTS["agent-1"][1])
    set_env(etc / "aggregator.env", "MQTT_PASSWORD", ACCOUNTS["aggregator"][1])
    return root


def start(cmd: list[str], env: dict[str, str], notify: NotifySocket, log: Path) -> subprocess.Popen[bytes]:
    full_env = {"PATH": os.environ["PATH"], "HOME": str(log.parent), **env,
                "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}  # ping every 0.5 s
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)


def stop(proc: subprocess.Popen[bytes], log: Path) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"did not stop on SIGTERM within 15 s:\n{log.read_text()[-2000:]}") from None
    return proc.returncode


def test_agent_unit_environment_notify_and_watchdog(root, store_broker, tmp_path) -> None:
    etc = root / "etc/floorwalker"
    env = read_env(etc / "agent.env", etc / "devices/agent-1.env")
    notify = NotifySocket(tmp_path / "notify.sock")
    log = tmp_path / "agent.log"
    with Session(store_broker.port, **store_broker.creds("aggregator")) as watcher:
        watcher.subscribe("floorwalker/+/agents/agent-1/#")
        proc = start([str(BIN / "floorwalker-agent"), "mock", "--config", str(etc / "devices/agent-1.toml"),
                      "--shoppers", "10"], env, notify, log)
        try:
            notify.wait_for("READY=1")
            notify.wait_for("WATCHDOG=1", count=3, timeout_s=10)
            messages = watcher.wait_for(2, timeout_s=20)
        finally:
            code = stop(proc, log)
            notify.wait_for("STOPPING=1", timeout_s=5)
            notify.close()
        # the agent's last word is its retained offline status: wait for it rather than for a while
        try:
            watcher.wait_until(lambda msgs: any(m.topic.endswith("/status")
                                                and json.loads(m.payload)["state"] == "offline" for m in msgs),
                               timeout_s=10, what="the agent's offline status")
        except TimeoutError:
            pass  # the assertions below say what arrived
        topics = [m.topic for m in watcher.messages]
    assert code == 0, log.read_text()[-2000:]
    status = [json.loads(m.payload)["state"] for m in watcher.messages if m.topic.endswith("/status")]
    assert status[0] == "online" and status[-1] == "offline", (status, log.read_text()[-2000:])
    assert len(messages) >= 2 and all(t.startswith("floorwalker/demo/agents/agent-1/") for t in topics)
    assert (root / "var/lib/floorwalker/spool").is_dir(), "the spool lives in the unit's state directory"



def test_agent_to_aggregator_as_installed_over_tls(root, store_broker, tmp_path) -> None:
    """Both programs from their installed env files: the agent's reports land in the aggregator's
    database, the aggregator reports READY and feeds its watchdog, /health needs the token."""
    import sqlite3
    import urllib.request

    from aggregator.embedded_broker import free_port, wait_for_port

    etc = root / "etc/floorwalker"
    port = free_port()
    set_env(etc / "aggregator.env", "FLOORWALKER_SERVE_ARGS", f"--host 127.0.0.1 --port {port}")
    agg_env = read_env(etc / "aggregator.env")
    db = root / "var/lib/floorwalker/floorwalker.db"
    agg_notify = NotifySocket(tmp_path / "agg.sock")
    agent_notify = NotifySocket(tmp_path / "agent.sock")
    agg_log, agent_log = tmp_path / "aggregator.log", tmp_path / "agent.log"
    # ExecStart=... serve --db /var/lib/floorwalker/floorwalker.db $FLOORWALKER_SERVE_ARGS (word-split)
    agg = start([str(BIN / "floorwalker-aggregator"), "serve", "--db", str(db),
                 *agg_env["FLOORWALKER_SERVE_ARGS"].split()], agg_env, agg_notify, agg_log)
    agent = None
    try:
        agg_notify.wait_for("READY=1")
        wait_for_port("127.0.0.1", port, 10)
        agent = start([str(BIN / "floorwalker-agent"), "mock", "--config", str(etc / "devices/agent-1.toml"),
                       "--shoppers", "10"], read_env(etc / "agent.env", etc / "devices/agent-1.env"),
                      agent_notify, agent_log)
        agent_notify.wait_for("READY=1")
        deadline = time.monotonic() + 20
        rows: list[tuple[str, int]] = []
        while time.monotonic() < deadline:
            if db.exists():
                with sqlite3.connect(db, timeout=5) as conn:
                    rows = conn.execute("SELECT agent, count(*) FROM messages GROUP BY agent").fetchall()
                conn.close()
                if rows:
                    break
            time.sleep(0.2)
        assert rows and rows[0][0] == "agent-1", (rows, agg_log.read_text()[-2000:])
        agg_notify.wait_for("WATCHDOG=1", count=2, timeout_s=10)
        token = agg_env["FLOORWALKER_API_TOKEN"]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/health",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            health = json.loads(resp.read())
        assert health["broker_connected"] is True, health
    finally:
        if agent is not None:
            stop(agent, agent_log)
        code = stop(agg, agg_log)
        agg_notify.close()
        agent_notify.close()
    assert code == 0, agg_log.read_text()[-2000:]
