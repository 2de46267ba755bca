"""``floorwalker``: broker + aggregator + mock agents from one command; Ctrl-C stops all of it cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from aggregator.embedded_broker import free_port
from tests.conftest import CONFIG_DIR, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.faults]


HOST = "127.0.0.2"  # `floorwalker --host`: a loopback address of its own, so 127.0.0.1 must not answer


def get(port: int, path: str, host: str = HOST) -> tuple[int, dict]:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except OSError:
        return 0, {}


def test_one_command_start_shows_shoppers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, broker_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MQTT_HOST", "MQTT_PORT", "FLOORWALKER_DB")}
    env.update(FLOORWALKER_STATE_DIR=str(tmp_path / "var"), LOG_LEVEL="WARNING",
               MQTT_CLIENT_ID=f"launcher-{tmp_path.name[-8:]}")
    out = tmp_path / "floorwalker.log"
    with open(out, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "aggregator.launcher", "--port", str(port), "--broker-port",
                                 str(broker_port), "--shoppers", "6", "--seed", "3", "--config-dir", str(CONFIG_DIR),
                                 "--host", HOST],
                                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        positions: dict = {}  # type: ignore[type-arg]

        def a_shopper_is_placed() -> bool:
            nonlocal positions
            assert proc.poll() is None, out.read_text()
            status, _ = get(port, "/health")
            if status != 200:
                return False
            _, positions = get(port, "/api/positions")
            return positions.get("total", 0) > 0 and any(p.get("x") is not None for p in positions["items"])

        with contextlib.suppress(TimeoutError):  # the assertion below shows the log
            wait_for(a_shopper_is_placed, 60, "a shopper on the map", interval_s=0.5)
        assert positions.get("total", 0) > 0, out.read_text()[-3000:]
        _, agents = get(port, "/api/agents")
        assert {a["agent"] for a in agents["items"]} == {"agent-1", "agent-2", "agent-3", "agent-4"}
        text = out.read_text()
        assert f"http://{HOST}:{port}/" in text and "the simulated store opens in" in text
        assert get(port, "/health", "127.0.0.1")[0] == 0  # listening on --host only
        _, occupancy = get(port, "/api/occupancy")
        assert occupancy["people"] >= 0 and occupancy["evidence"]["devices"] >= 1  # the estimate is live
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        assert proc.wait(40) == 0, out.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.read_text()
    assert "floorwalker: stopped" in text
    assert "Traceback" not in text, text[-3000:]
    assert get(port, "/health")[0] == 0  # nothing listens any more
    assert (tmp_path / "floorwalker.db").exists()  # where serve and generate put it too
