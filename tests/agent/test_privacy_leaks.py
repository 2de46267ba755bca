"""No MAC anywhere: published payloads, log lines, the spool file, recordings, the truth file.

Known MACs go in through a real pseudo-terminal into ``run --record`` with DEBUG logging while the
broker is away (so messages sit in the spool), then the broker comes up and everything is published.
Every artefact is searched for each MAC in any case and with any separator (or none).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import load_device
from agent.runtime import CountingSink, Pipeline
from aggregator.embedded_broker import Broker, free_port
from tests.agent.agentproc import agent_env, start_agent, stop_agent
from tests.agent.helpers import DurableCollector, persistent_broker_conf, write_device
from tests.agent.ptys import FakeSniffer
from tests.conftest import wait_for

MACS = ["A4:83:E7:5C:19:0B", "02:1f:9e:ab:cd:ef", "3c-28-6d-00-11-22", "da:a1:19:77:88:99"]


def leaks(blob: bytes | str) -> list[str]:
    """The MACs found in ``blob``, however they are written (case, ``:``/``-``/``.``/none)."""
    text = blob.decode("latin-1") if isinstance(blob, bytes) else blob
    hexonly = re.sub(r"[^0-9a-f]", "", text.lower())
    return [mac for mac in MACS if re.sub(r"[^0-9a-f]", "", mac.lower()) in hexonly]


def spooled_enters(spool: Path) -> int:
    if not spool.exists():
        return 0
    conn = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT COUNT(*) FROM spool WHERE topic LIKE '%/enter'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        conn.close()


def lines_for(macs: list[str]) -> bytes:
    out = b""
    for i, mac in enumerate(macs * 3):
        if i % 2:
            out += f"RSSI: -5{i % 10} Ch: 6 Peer MAC: {mac} SSID: Home\n".encode()
        else:
            out += json.dumps({"rssi": -50 - i % 10, "addr2": mac, "ssid": "x"}).encode() + b"\n"
    return out


def test_search_itself_finds_a_mac_in_any_form() -> None:
    assert leaks("device A483E75C190B seen") == [MACS[0]]
    assert leaks(b"3C.28.6D.00.11.22") == [MACS[2]]
    assert leaks("d-9f86d081884c7d65") == []


def test_in_process_logs_stay_clean(config_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pipeline = Pipeline(load_device(write_device(config_dir)), CountingSink("agent-t"))
    for i, line in enumerate(lines_for(MACS).splitlines()):
        pipeline.line("s1", line, 1795435593.0 + i * 0.5)
    pipeline.tick(1795435593.0 + 100)
    assert pipeline.published["enter"] == len(MACS)
    assert leaks(caplog.text) == []


@pytest.mark.broker
def test_no_mac_on_the_wire_in_logs_spool_or_recording(config_dir: Path, tmp_path: Path,
                                                       broker_factory: Callable[..., Broker]) -> None:
    sniffer = FakeSniffer(tmp_path / "ttyUSB0")
    port = free_port()
    spool = tmp_path / "spool.sqlite"
    record = tmp_path / "record.jsonl"
    device = write_device(config_dir, serial_port=sniffer.port, port=port, spool=spool)
    log = tmp_path / "agent.log"
    env = agent_env(port, LOG_LEVEL="DEBUG")
    proc = start_agent("--log-level", "DEBUG", "run", "--config", str(device), "--record", str(record),
                       env=env, stderr_path=log)
    collector: DurableCollector | None = None
    try:
        wait_for(lambda: "agent-started" in log.read_text(), 20, "the agent to open its sniffer")
        sniffer.write(lines_for(MACS) + b"ets Jan  8 2013,rst cause:2\n")
        # broker away: the messages go to the spool
        wait_for(lambda: spooled_enters(spool) >= len(MACS), 20, "every enter in the spool", interval_s=0.05)
        spool_bytes = spool.read_bytes() + (spool.with_name(spool.name + "-wal").read_bytes()
                                            if spool.with_name(spool.name + "-wal").exists() else b"")
        broker = broker_factory(port=port, workdir=tmp_path / "broker", extra_conf=persistent_broker_conf())
        collector = DurableCollector(broker.host, broker.port, "floorwalker/#")
        wait_for(lambda: len(collector.payloads("/enter")) >= len(MACS), 20, "the spooled enters delivered")
        sniffer.write(lines_for(MACS))  # and once more while connected
        # Kept: nothing observable says these lines are handled (the recording is buffered until the agent
        # stops, and a health report is not ordered after serial lines); what they publish lands in this second.
        time.sleep(1.0)
    finally:
        stop_agent(proc)
        sniffer.close()
        if collector is not None:
            collector.close()
    assert collector is not None
    payloads = [p for _, p, _ in collector.messages]
    assert len(collector.payloads("/enter")) == len(MACS)
    assert b'"ranges"' in b"".join(payloads)
    health = collector.payloads("/health")
    assert health and health[-1]["rejected"].get("garbage", 0) >= 1  # the boot banner, counted by kind
    assert leaks(b"\n".join(payloads)) == []
    assert leaks(log.read_bytes()) == [], "a MAC reached the log"
    text = log.read_text()
    assert "event=agent-started" in text and "DEBUG agent.runtime event=presence" in text
    assert "event=line-rejected" in text and "DEBUG agent.mqtt" in text
    assert leaks(spool_bytes) == [] and leaks(spool.read_bytes()) == []
    recorded = record.read_text()
    assert recorded.count("\n") >= 2 * 3 * len(MACS) and leaks(recorded) == []
