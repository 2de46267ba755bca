"""Fixtures shared by the whole suite: a real MQTT broker, a temporary SQLite file, the config dir.

The broker is mosquitto, started on a free port with a temporary configuration, exactly as a
store runs it. Only when mosquitto is not installed does the harness fall back to amqtt (and
says so in the test output); under CI=true a missing mosquitto fails the run instead, because
the CI script installs it and a silent fallback would hide that it did not.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aggregator.embedded_broker import Broker, find_mosquitto, start_amqtt, start_mosquitto

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "firmware-config"
# beside the checkout; a worktree under wt/ finds it one level further up
SHARED = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir()),
              REPO.parent / "shared")


def wait_for(condition: Callable[[], object], timeout_s: float = 10.0, what: str = "the condition",
             interval_s: float = 0.01) -> None:
    """Poll ``condition`` until it holds (a thread or process of the code under test makes it so);
    TimeoutError after ``timeout_s``. For tests without an event loop (tests/aggregator/conftest.py
    has the asyncio ``wait_until``). A condition that asks another process (HTTP, a SQLite file)
    may poll less often (``interval_s``) so as not to take the CPU the processes under test need."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met in {timeout_s} s")
        time.sleep(interval_s)


def pytest_report_header(config: pytest.Config) -> list[str]:
    binary = find_mosquitto()
    if binary:
        return [f"mqtt broker: mosquitto ({binary})"]
    return ["mqtt broker: mosquitto NOT installed -> embedded amqtt fallback (apt-get install mosquitto)"]


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Start brokers (mosquitto, or amqtt where it is absent); all stopped at teardown.

    ``factory(port=..., workdir=...)`` on the same port and workdir restarts a broker with its
    persisted sessions, for broker-restart tests."""
    started: list[Broker] = []
    binary = find_mosquitto()
    if binary is None and os.environ.get("CI"):
        pytest.fail("mosquitto is not installed in CI: the broker tests cannot run on the real broker")

    def factory(port: int | None = None, workdir: Path | None = None, **kwargs: object) -> Broker:
        if binary:
            broker = start_mosquitto(port, workdir=workdir or tmp_path / f"mosquitto-{len(started)}", **kwargs)
        else:
            warnings.warn("mosquitto not installed: using the embedded amqtt broker", stacklevel=2)
            broker = start_amqtt(port)
        started.append(broker)
        return broker

    yield factory
    for broker in started:
        broker.stop()


@pytest.fixture
def mqtt_broker(broker_factory: Callable[..., Broker]) -> Broker:
    """A fresh broker on a free port for this test."""
    return broker_factory()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """A path for a real SQLite database file, removed with the test's tmp dir."""
    return tmp_path / "floorwalker-test.db"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A writable copy of firmware-config/, for tests that edit configuration."""
    dest = tmp_path / "firmware-config"
    shutil.copytree(CONFIG_DIR, dest)
    return dest


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"reference data not found at {SHARED} (the checkout must sit beside shared/)")
    return SHARED


def process_ended(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether a process that is not our child (a child of a killed parent) is gone within ``timeout_s``.

    It is re-parented to init, or to this test if it is a subreaper: reaped here when it is ours."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False
