"""Test helpers for the agent: a subscriber that survives broker restarts, dedup/order checks, configs."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-store-secret-9f1c2b7e4d"


class DurableCollector:
    """A QoS-1 subscriber with a persistent session: the broker queues for it while it is away."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"collector-{uuid.uuid4().hex[:8]}",
                                  clean_session=False)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a, **k: self._subscribed.set()
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("subscription not acknowledged")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, msg.payload, msg.retain))
            self._cond.notify_all()

    def payloads(self, kind_suffix: str | None = None) -> list[dict]:
        with self._cond:
            return [json.loads(p) for t, p, _ in self.messages if kind_suffix is None or t.endswith(kind_suffix)]

    def wait_for_ids(self, want: set[str], timeout_s: float = 20.0) -> list[str]:
        """Wait until every msg_id in ``want`` arrived; returns all msg_ids in arrival order."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                ids = [json.loads(p).get("msg_id") for t, p, _ in self.messages if not t.endswith("/status")]
                missing = want - set(ids)
                if not missing:
                    return ids
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(missing)} of {len(want)} messages missing, e.g. {sorted(missing)[:5]}")
                self._cond.wait(left)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def first_occurrences(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def seq_of(msg_id: str) -> int:
    return int(msg_id.rsplit(":", 1)[1])


def assert_in_order_once(ids: list[str], expected: list[str]) -> None:
    """After dedup by msg_id: exactly the expected ids, in sequence order."""
    firsts = first_occurrences(ids)
    assert sorted(firsts, key=seq_of) == firsts, "messages arrived out of order"
    assert set(firsts) >= set(expected)
    assert [i for i in firsts if i in set(expected)] == sorted(expected, key=seq_of)


def write_device(config_dir: Path, *, agent_id: str = "agent-t", port: int = 1883, serial_port: str = "/dev/null",
                 spool: Path | None = None, extra: str = "", pirs: bool = False, door: bool = False,
                 presence: str = "") -> Path:
    """A device file in a copy of firmware-config (the ``config_dir`` fixture)."""
    text = f"""
[agent]
id = "{agent_id}"
store = "../store.toml"
health_interval_s = 1

[mqtt]
host = "127.0.0.1"
port = {port}

[presence]
rssi_floor_dbm = -90
min_sightings = 2
move_threshold_px = 40
absence_s = 5
{presence}

[spool]
path = "{spool or config_dir / 'spool.sqlite'}"
max_messages = 100000

[[sniffers]]
id = "s1"
port = "{serial_port}"
position = [600, 330]
calibration = [{{ distance_m = 1, rssi_dbm = -41 }}, {{ distance_m = 2, rssi_dbm = -50 }},
               {{ distance_m = 4, rssi_dbm = -59 }}, {{ distance_m = 8, rssi_dbm = -68 }}]
{extra}
"""
    if pirs:
        text += '\n[[pirs]]\nid = "pir-womens"\npin = 17\nzone = "Women\'s"\nhold_off_s = 1\n'
    if door:
        text += '\n[door]\nid = "door-main"\npin_a = 23\npin_b = 24\n'
    path = config_dir / "devices" / f"{agent_id}.toml"
    path.write_text(text)
    return path


def persistent_broker_conf() -> list[str]:
    """Extra mosquitto lines so a restarted broker finds its saved sessions.

    Started as root, mosquitto drops to the ``mosquitto`` user, which cannot write the test's private
    workdir: no log, no persistence file, and every session is lost on restart. Keep root in that case.
    """
    import os

    return ["user root"] if os.geteuid() == 0 else []
