"""``floorwalker-agent replay``: the real Brno captures, raw serial logs, recordings, and publishing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from aggregator.embedded_broker import Broker
from tests.agent.agentproc import agent_env, run_agent
from tests.agent.helpers import DurableCollector, write_device

BRNO = "reference/realdata/probe-requests-brno"


@pytest.mark.parametrize("name, fmt", [("pos1_2024-03-16.pcap", "pcap"), ("pos1_2024-05-03.csv", "brno")])
def test_dry_run_stats_on_the_brno_captures(shared_dir: Path, config_dir: Path, name: str, fmt: str) -> None:
    device = write_device(config_dir)
    result = run_agent("replay", "--config", str(device), str(shared_dir / BRNO / name), "--dry-run", "--stats",
                       env=agent_env())
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()  # exactly one JSON object
    stats = json.loads(line)
    assert stats["format"] == fmt
    assert stats["records_read"] == stats["probe_requests"] + sum(stats["rejected"].values())
    assert stats["probe_requests"] > 1000
    assert 0 < stats["devices_after_passerby_filter"] < stats["devices_before_filtering"]
    assert stats["messages"]["enter"] == stats["messages"]["exit"]  # every visit closed at the end


def test_raw_serial_log_rejections_counted(config_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "sniffer.log"
    log.write_bytes(b"ets Jan  8 2013,rst cause:2\n" + b"RSSI: -60 Peer MAC: aa:bb:cc:dd:ee:01\n" * 3
                    + b'{"rssi": -61, "addr2": "aa:bb:cc:dd:ee:02"}\n' * 2 + b'{"rssi": -6\n' + b"\xff\xfe\n")
    result = run_agent("replay", "--config", str(write_device(config_dir)), str(log), "--dry-run", "--stats",
                       env=agent_env())
    stats = json.loads(result.stdout)
    assert stats["format"] == "serial" and stats["probe_requests"] == 5
    assert stats["rejected"] == {"binary": 1, "garbage": 1, "partial": 1}
    assert stats["devices_before_filtering"] == 2 and stats["devices_after_passerby_filter"] == 2


@pytest.mark.broker
def test_replay_publishes_to_the_broker(config_dir: Path, tmp_path: Path, mqtt_broker: Broker) -> None:
    recording = tmp_path / "rec.jsonl"
    recording.write_text("".join(json.dumps({"ts": 1795435593.0 + i, "sniffer": "s1", "device": f"d-{i % 3:016x}",
                                             "randomized": False, "rssi": -60}) + "\n" for i in range(12)))
    device = write_device(config_dir, port=mqtt_broker.port, spool=tmp_path / "spool.sqlite")
    collector = DurableCollector(mqtt_broker.host, mqtt_broker.port, "floorwalker/demo/agents/agent-t/+")
    try:
        result = run_agent("replay", "--config", str(device), str(recording), env=agent_env(mqtt_broker.port))
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 10
        while len(enters := collector.payloads("/enter")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        collector.close()
    assert {p["device"] for p in enters} == {f"d-{i:016x}" for i in range(3)}


def _brno_copy(src: Path, dst: Path, *, rows: int | None = None, label: str | None = None) -> Path:
    """A copy of a Brno CSV, optionally cut to ``rows`` and with the label column set to ``label``."""
    lines = src.read_text().splitlines()
    header, body = lines[0], lines[1:rows + 1 if rows else None]
    if label is not None:
        body = [line.rsplit(";", 1)[0] + ";" + label for line in body]
    dst.write_text("\n".join([header, *body]) + "\n")
    return dst


def _occupancy(config_dir: Path, tmp_path: Path, *files: Path, name: str = "out.csv") -> list[str]:
    out = tmp_path / name
    result = run_agent("replay", "--config", str(write_device(config_dir)), *map(str, files), "--dry-run",
                       "--stats", "--occupancy", str(out), env=agent_env())
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["devices_after_linking"] < stats["devices_before_linking"]  # random MACs were linked
    return out.read_text().splitlines()


def test_replay_occupancy_writes_one_row_per_minute_and_never_reads_the_label(
        shared_dir: Path, config_dir: Path, tmp_path: Path) -> None:
    src = shared_dir / BRNO / "days" / "pos1_2023-04-14.csv"
    rows = _occupancy(config_dir, tmp_path, src)
    assert rows[0] == "minute,people"
    assert rows[1].startswith("2023-04-14T16:00:00,")  # the capture's own clock, minute start
    minutes = [r.split(",")[0] for r in rows[1:]]
    assert len(minutes) == len(set(minutes)) == 480  # 16:00 to 23:59, every minute
    people = [float(r.split(",")[1]) for r in rows[1:]]
    assert max(people) > 2 and min(people) == 0  # up to 5 people that afternoon, nobody at night
    blanked = _brno_copy(src, tmp_path / "blank.csv", label="")
    scrambled = _brno_copy(src, tmp_path / "scrambled.csv", label="99.0")
    assert _occupancy(config_dir, tmp_path, blanked, name="b.csv") == rows
    assert _occupancy(config_dir, tmp_path, scrambled, name="s.csv") == rows


def test_replay_occupancy_fuses_two_sniffers_files(shared_dir: Path, config_dir: Path, tmp_path: Path) -> None:
    pos1 = _brno_copy(shared_dir / BRNO / "days" / "pos1_2024-02-08.csv", tmp_path / "pos1.csv", rows=1500)
    pos2 = _brno_copy(shared_dir / BRNO / "days" / "pos2_2024-02-08.csv", tmp_path / "pos2.csv", rows=1500)
    one = _occupancy(config_dir, tmp_path, pos1, name="one.csv")
    both = _occupancy(config_dir, tmp_path, pos1, pos2, name="both.csv")
    assert both[0] == "minute,people" and both[1].startswith("2024-02-08T14:56:00,")
    assert len(both) >= len(one) and both != one  # one estimate from both files, not two
    minutes = [r.split(",")[0] for r in both[1:]]
    assert minutes == sorted(set(minutes))
