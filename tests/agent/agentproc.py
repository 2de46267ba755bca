"""Start the real ``floorwalker-agent`` as a child process, as systemd would, and stop it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.agent.helpers import REPO, SECRET


def agent_env(port: int | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ, FLOORWALKER_STORE_SECRET=SECRET, LOG_LEVEL="DEBUG", PYTHONUNBUFFERED="1")
    env.pop("MQTT_HOST", None)
    env.pop("MQTT_PORT", None)
    if port is not None:
        env.update(MQTT_HOST="127.0.0.1", MQTT_PORT=str(port))
    env.update(extra)
    return env


def start_agent(*args: str, env: dict[str, str], stderr_path: Path) -> subprocess.Popen[bytes]:
    with open(stderr_path, "ab") as err:
        return subprocess.Popen([sys.executable, "-m", "agent.cli", *args], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)


def stop_agent(proc: subprocess.Popen[bytes], *, kill: bool = False) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run_agent(*args: str, env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout_s)
