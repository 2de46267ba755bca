"""A local MQTT broker for the one-command start and the test suite.

Mosquitto when it is installed (the real thing, what stores run), else amqtt, a pure-Python
broker, so a fresh laptop with nothing but Python still gets a working system. Whoever starts
one is told which it got: a test run on amqtt is not the same evidence as one on mosquitto.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s} s") from None
            time.sleep(0.05)


@dataclass
class Broker:
    """A running broker: where it listens, what it is, how to stop it."""

    host: str
    port: int
    kind: str  # "mosquitto" or "amqtt"
    workdir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stop: threading.Event | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._stop is not None:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5)

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would (mosquitto only)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def log_text(self) -> str:
        if self.workdir and (self.workdir / "mosquitto.log").exists():
            return (self.workdir / "mosquitto.log").read_text(errors="replace")
        return ""

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_mosquitto(port: int | None = None, *, host: str = "127.0.0.1", extra_conf: Iterable[str] = (),
                    workdir: Path | None = None, listener: bool = True, timeout_s: float = 10.0) -> Broker:
    """Start mosquitto with a temporary configuration; ``extra_conf`` lines are appended.

    With ``listener=False`` the caller's ``extra_conf`` declares every listener itself (TLS tests)."""
    binary = find_mosquitto()
    if binary is None:
        raise FileNotFoundError("mosquitto is not installed (Debian: apt-get install mosquitto)")
    port = port or free_port(host)
    extra_conf = list(extra_conf)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="fw-mosquitto-"))
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [
        "per_listener_settings false" if listener else "",
        f"listener {port} {host}" if listener else "",
        "allow_anonymous true" if listener else "",
        # Started as root, mosquitto drops to the `mosquitto` user and then cannot write our
        # workdir: no log, no persistence, sessions silently lost across a restart. Stay root.
        "user root" if os.geteuid() == 0 and not any(line.startswith("user ") for line in extra_conf) else "",
        "persistence true",
        f"persistence_location {workdir}/",
        f"log_dest file {workdir}/mosquitto.log",
        "log_type error", "log_type warning", "log_type notice",
        "max_queued_messages 1000000",
        "max_inflight_messages 1000",
        *extra_conf,
    ]
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join(line for line in lines if line) + "\n")
    with open(workdir / "stderr.log", "ab") as stderr:
        # A session of its own: Ctrl-C in a terminal signals the whole foreground group, and the broker
        # must outlive the clients that are still committing and acknowledging; Broker.stop() ends it.
        process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=stderr,
                                   start_new_session=True)
    broker = Broker(host, port, "mosquitto", workdir=workdir, process=process)
    try:
        wait_for_port(host, port, timeout_s)
    except TimeoutError:
        broker.stop()
        err = (workdir / "stderr.log").read_text(errors="replace")
        detail = err.strip() or broker.log_text[-500:]
        raise RuntimeError(f"mosquitto did not start on {host}:{port}: {detail}") from None
    return broker


def start_amqtt(port: int | None = None, *, host: str = "127.0.0.1", timeout_s: float = 10.0) -> Broker:
    """Start amqtt in a thread of its own, with its own event loop."""
    from amqtt.broker import Broker as AmqttBroker

    port = port or free_port(host)
    stop = threading.Event()
    started = threading.Event()
    errors: list[BaseException] = []
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }

    async def serve() -> None:
        broker = AmqttBroker(config)
        await broker.start()
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await broker.shutdown()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported to the starting thread below
            errors.append(exc)
            started.set()

    thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
    thread.start()
    started.wait(timeout_s)
    if errors:
        raise RuntimeError(f"amqtt did not start on {host}:{port}: {errors[0]}")
    wait_for_port(host, port, timeout_s)
    return Broker(host, port, "amqtt", _thread=thread, _stop=stop)


def start_broker(port: int | None = None, *, host: str = "127.0.0.1", prefer: str = "mosquitto") -> Broker:
    """Mosquitto if installed, else amqtt; logs which one it started."""
    if prefer == "mosquitto" and find_mosquitto():
        broker = start_mosquitto(port, host=host)
    else:
        broker = start_amqtt(port, host=host)
    log.info("event=broker-started kind=%s host=%s port=%d", broker.kind, broker.host, broker.port)
    return broker
