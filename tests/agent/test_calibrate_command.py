"""``floorwalker-agent calibrate``: the walk test through a real pseudo-terminal."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path

from agent.config import CalibrationPoint
from agent.positioning.calibration import LogDistanceModel
from tests.agent.agentproc import agent_env
from tests.agent.helpers import REPO, write_device
from tests.agent.ptys import FakeSniffer

PHONE = "A4:83:E7:5C:19:0B"
TRUE_RSSI = {1.0: -42, 2.0: -51, 4.0: -60}


def test_walk_test_writes_a_table_that_falls_with_distance(config_dir: Path, tmp_path: Path) -> None:
    sniffer = FakeSniffer(tmp_path / "ttyUSB0")
    device = write_device(config_dir, serial_port=sniffer.port)
    out = tmp_path / "calibration.toml"
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "calibrate", "--config", str(device), "--mac", PHONE,
                             "--distances", "1,2,4", "--seconds", "0.8", "--no-prompt", "--out", str(out)],
                            cwd=REPO, env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("measuring at"):
                d = float(line.split()[2])
                time.sleep(0.1)
                for i in range(5):  # the phone, with a blocked frame, and a stranger's phone
                    rssi = TRUE_RSSI[d] - (15 if i == 2 else 0)
                    sniffer.write(f"RSSI: {rssi} Ch: 6 Peer MAC: {PHONE.lower()} SSID:\n".encode())
                    sniffer.write(b"RSSI: -30 Ch: 6 Peer MAC: 02:00:00:00:00:01 SSID:\n")
            if line.startswith("calibration"):
                break
        assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        sniffer.close()
    table = tomllib.loads(out.read_text())["calibration"]
    assert [(row["distance_m"], row["rssi_dbm"]) for row in table] == [(1, -42), (2, -51), (4, -60)]  # medians
    model = LogDistanceModel.fit([CalibrationPoint(r["distance_m"], r["rssi_dbm"]) for r in table])
    assert 2.5 < model.n < 3.5
    assert PHONE.lower() not in out.read_text()
