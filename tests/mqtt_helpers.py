"""A plain paho subscriber for tests: collects what a broker delivers and waits for it."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int


class Collector:
    """Subscribe to ``topics`` and keep every message, in arrival order."""

    def __init__(self, host: str, port: int, *topics: str, qos: int = 1, **auth: str) -> None:
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        if auth:
            self.client.username_pw_set(auth.get("username"), auth.get("password"))
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a, **k: self._subscribed.set()
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe([(t, qos) for t in topics])
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("subscription not acknowledged in 10 s")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, msg.payload, msg.retain, msg.qos))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"got {len(self.messages)} of {count} messages in {timeout_s} s")
                self._cond.wait(left)
            return list(self.messages)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def publish(host: str, port: int, items: list[tuple[str, bytes]], qos: int = 1, retain: bool = False) -> None:
    """Publish ``(topic, payload)`` pairs and wait until the broker has acknowledged each."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect(host, port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=qos, retain=retain) for t, p in items]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()
