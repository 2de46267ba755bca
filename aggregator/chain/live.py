"""Every store's "in store now", from the chain broker the store brokers bridge into (docs/CHAIN.md).

The stores' retained ``floorwalker/<store>/occupancy`` and agents' availability cross the bridge;
here one paho client subscribes to them in its own thread and hands each message to the event
loop in exactly one place (``call_soon_threadsafe``). Payloads are decoded defensively: a bad one
is counted and dropped, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from agent.config import MqttSettings

log = logging.getLogger(__name__)
TOPICS = ("floorwalker/+/occupancy", "floorwalker/+/agents/+/status")


@dataclass
class LiveChain:
    """The latest occupancy and agent availability per store, owned by the event loop."""

    occupancy: dict[str, dict[str, Any]] = field(default_factory=dict)
    agents: dict[str, dict[str, str]] = field(default_factory=dict)  # store -> agent -> online/offline
    rejected: int = 0
    connected: bool = False

    def apply(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        try:
            data = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            self.rejected += 1
            return
        if len(parts) == 3 and parts[2] == "occupancy" and isinstance(data, dict):
            people = data.get("people", data.get("estimate"))
            if isinstance(people, (int, float)) and not isinstance(people, bool):
                self.occupancy[parts[1]] = {"people": people, "ts": data.get("ts")}
                return
        elif len(parts) == 5 and parts[2] == "agents" and parts[4] == "status":
            state = data.get("state") if isinstance(data, dict) else None
            if isinstance(state, str):
                self.agents.setdefault(parts[1], {})[parts[3]] = state[:16]
                return
        self.rejected += 1

    def stores(self) -> list[dict[str, Any]]:
        names = sorted(set(self.occupancy) | set(self.agents))
        return [{"store": s, "in_store_now": self.occupancy.get(s, {}).get("people"),
                 "ts": self.occupancy.get(s, {}).get("ts"),
                 "agents_online": sum(1 for v in self.agents.get(s, {}).values() if v == "online"),
                 "agents": len(self.agents.get(s, {}))} for s in names]


class LiveSubscriber:
    """A paho client on the chain broker feeding a :class:`LiveChain` on the loop."""

    def __init__(self, settings: MqttSettings, live: LiveChain) -> None:
        self.settings = settings
        self.live = live
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fw-chain-{uuid.uuid4().hex[:8]}")
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        s = self.settings
        if s.username:
            self.client.username_pw_set(s.username, s.password or None)
        if s.tls or s.ca_file:
            self.client.tls_set(ca_certs=s.ca_file or None, certfile=s.cert_file or None, keyfile=s.key_file or None,
                                tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect_async(s.host, s.port, keepalive=s.keepalive_s)  # paho reconnects by itself
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        if getattr(rc, "is_failure", False):
            log.error("event=chain-broker-refused reason=%s", rc)
            return
        client.subscribe([(t, 1) for t in TOPICS])
        self._to_loop(setattr, self.live, "connected", True)
        log.info("event=chain-broker-connected host=%s", self.settings.host)

    def _on_disconnect(self, *_args: object) -> None:
        self._to_loop(setattr, self.live, "connected", False)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self._to_loop(self.live.apply, msg.topic, bytes(msg.payload))

    def _to_loop(self, func: Any, *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(func, *args)
