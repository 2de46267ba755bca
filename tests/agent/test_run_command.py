"""``floorwalker-agent run`` as a process: clear refusals with the right exit codes, and a real stream."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.errors import EXIT_CONFIG, EXIT_NOINPUT, EXIT_UNAVAILABLE
from aggregator.embedded_broker import Broker, free_port
from tests.agent.agentproc import agent_env, run_agent, start_agent, stop_agent
from tests.agent.helpers import DurableCollector, assert_in_order_once, persistent_broker_conf, write_device
from tests.agent.ptys import FakeSniffer
from tests.conftest import wait_for


@pytest.fixture
def sniffer(tmp_path: Path) -> Iterator[FakeSniffer]:
    fake = FakeSniffer(tmp_path / "ttyUSB0")
    yield fake
    fake.close()


def test_placeholder_secret_is_refused(config_dir: Path) -> None:
    device = write_device(config_dir)
    env = agent_env()
    env.pop("FLOORWALKER_STORE_SECRET")
    result = run_agent("run", "--config", str(device), env=env)
    assert result.returncode == EXIT_CONFIG
    assert "CHANGE-ME" in result.stderr and "mock" in result.stderr


def test_no_gpio_says_so_and_suggests_mock(config_dir: Path, sniffer: FakeSniffer) -> None:
    device = write_device(config_dir, serial_port=sniffer.port, pirs=True)
    result = run_agent("run", "--config", str(device), env=agent_env(free_port()))
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    assert "no GPIO" in result.stderr and "floorwalker-agent mock" in result.stderr


def test_missing_serial_port(config_dir: Path, tmp_path: Path) -> None:
    device = write_device(config_dir, serial_port=str(tmp_path / "ttyUSB9"))
    result = run_agent("run", "--config", str(device), env=agent_env(free_port()))
    assert result.returncode == EXIT_NOINPUT
    assert "ttyUSB9" in result.stderr and result.stderr.strip().count("\n") == 0


def probe_lines(macs: list[str], rssi: int = -55) -> bytes:
    out = b""
    for i, mac in enumerate(macs):
        if i % 2:
            out += f"RSSI: {rssi} Ch: 6 Peer MAC: {mac} SSID: Home\n".encode()
        else:
            out += json.dumps({"rssi": rssi, "addr2": mac, "subtype": "ProbeReq", "ch": 1}).encode() + b"\n"
    return out


def spool_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT payload FROM spool ORDER BY seq").fetchall()
    db.close()
    return [json.loads(p)["msg_id"] for (p,) in rows]


@pytest.mark.broker
@pytest.mark.faults
def test_killed_with_a_full_spool_then_restarted(config_dir: Path, tmp_path: Path, sniffer: FakeSniffer,
                                                 broker_factory: Callable[..., Broker]) -> None:
    port = free_port()
    spool = tmp_path / "spool.sqlite"
    device = write_device(config_dir, serial_port=sniffer.port, port=port, spool=spool)
    env = agent_env(port)
    proc = start_agent("run", "--config", str(device), env=env, stderr_path=tmp_path / "agent.log")
    try:
        # The broker is not there yet: everything the agent makes must wait in the spool.
        macs = [f"a4:83:e7:00:00:{i:02x}" for i in range(40)]
        log = tmp_path / "agent.log"
        wait_for(lambda: spool.exists(), 20, "the agent to start")
        # logged once the serial port is open (pyserial empties its input buffer on open: what was written
        # before would be lost) and its reader runs
        wait_for(lambda: "event=agent-started" in log.read_text(), 20, "the agent to open its sniffer")
        sniffer.write(probe_lines(macs) + probe_lines(macs))
        wait_for(lambda: len([i for i in spool_ids(spool) if i]) >= 40, 20, "40 spooled enter messages")
        before = spool_ids(spool)
    finally:
        stop_agent(proc, kill=True)  # SIGKILL: no chance to flush anything
    broker = broker_factory(port=port, workdir=tmp_path / "broker", extra_conf=persistent_broker_conf())
    collector = DurableCollector(broker.host, broker.port, "floorwalker/demo/agents/agent-t/+")
    proc = start_agent("run", "--config", str(device), env=env, stderr_path=tmp_path / "agent.log")
    try:
        ids = collector.wait_for_ids(set(before), timeout_s=30)
    finally:
        stop_agent(proc)
        collector.close()
    assert_in_order_once(ids, before)
    enters = [p for p in collector.payloads("/enter")]
    assert len({p["device"] for p in enters}) == 40
    assert spool_ids(spool) == []
