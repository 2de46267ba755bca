"""Publishing to the broker: QoS 1, persistent session, last will, and a disk spool when it is away.

Two modes, switched under one lock so no message can slip between them:

* **direct** — connected and nothing spooled: hand the message to paho (QoS 1). paho keeps it until
  the broker acknowledges it, and with a persistent session (MQTT 5, ``clean_start=False``) resends
  it after a reconnect.
* **spooling** — disconnected, or older messages still in the spool: append to the spool. After a
  reconnect a pump thread first waits for paho's own resends (older than anything spooled), then
  replays the spool in order, removing rows only once the broker has acknowledged them.

A crash therefore loses at most what paho held in memory in direct mode; spooled rows survive. A
replay can deliver a message twice (acknowledgement lost in a disconnect), which is why every
message carries a unique ``msg_id`` and the aggregator deduplicates by it.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import contract
from agent.config import DeviceConfig, MqttSettings
from agent.errors import BrokerUnavailable
from agent.sequence import Sequence
from agent.spool import Spool

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our session (and queued QoS-1 state) for a week
DRAIN_BATCH = 500
RESEND_WAIT_S = 10.0  # how long to let paho resend its in-flight messages before replaying the spool
_REFUSED_CODES = {"Bad user name or password", "Not authorized"}


class Publisher:
    """Publishes agent-tier messages for one agent; spools while the broker is unreachable."""

    def __init__(self, *, agent_id: str, store_id: str, settings: MqttSettings, spool: Spool,
                 sequence: Sequence, client_id: str | None = None, reconnect_max_s: float = 10.0) -> None:
        self.agent_id = agent_id
        self.store_id = store_id
        self.settings = settings
        self.spool = spool
        self.sequence = sequence
        self.published = 0
        self.refused: str | None = None
        # Two locks: _lock decides direct vs spool (held around client.publish); _acked guards the
        # acknowledgement bookkeeping. paho calls on_publish holding its own mutex that publish() also
        # takes, so on_publish must never wait for _lock, or the two threads deadlock.
        self._lock = threading.Lock()
        self._acked = threading.Condition(threading.Lock())
        self._early_acks: set[int] = set()
        self._connected = False
        self._draining = False
        self._direct: dict[int, tuple[int, str, bytes]] = {}  # paho mid -> spool row, until PUBACK
        self._untracked: dict[int, tuple[int, str, bytes]] = {}  # status messages: acks expected, not kept
        self._replaying: dict[int, tuple[int, str, bytes]] = {}  # replayed spool rows awaiting PUBACK
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connect_event = threading.Event()
        self._pump: threading.Thread | None = None
        self.status_topic = contract.agent_topic(store_id, agent_id, "status")
        self._subscriptions: list[str] = []
        self._topics: dict[str, str] = {}
        self.client = self._make_client(client_id or f"floorwalker-{agent_id}", reconnect_max_s)

    @classmethod
    def for_device(cls, device: DeviceConfig, *, client_id: str | None = None) -> Publisher:
        """A publisher for a device file: its broker (env overrides applied), its spool and sequence."""
        spool = Spool(device.spool.path, max_messages=device.spool.max_messages)
        sequence = Sequence(device.agent_id, device.spool.path.with_suffix(".seq"))
        return cls(agent_id=device.agent_id, store_id=device.store.id, settings=device.mqtt.with_env(), spool=spool,
                   sequence=sequence, client_id=client_id)

    # ------------------------------------------------------------------ set-up

    def _make_client(self, client_id: str, reconnect_max_s: float) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        if s.tls:
            client.tls_set(ca_certs=s.ca_file or None, certfile=s.cert_file or None, keyfile=s.key_file or None,
                           cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(self.status_topic, contract.encode_agent(contract.offline(self.agent_id)), qos=1, retain=True)
        client.max_inflight_messages_set(200)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=0.5, max_delay=reconnect_max_s)  # type: ignore[arg-type]
        client.enable_logger(logging.getLogger("agent.mqtt"))  # paho's own lines: topics and sizes, no payloads
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def start(self, *, wait_s: float = 5.0) -> Publisher:
        """Connect in the background; raise BrokerUnavailable only if the broker refuses our credentials.

        An unreachable broker is not an error: the agent keeps sensing and spools."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        s = self.settings
        try:
            self.client.connect_async(s.host, s.port, keepalive=s.keepalive_s, clean_start=False, properties=props)
        except (OSError, ValueError) as exc:
            raise BrokerUnavailable(f"{s.host}:{s.port}: {exc}") from None
        self.client.loop_start()
        self._pump = threading.Thread(target=self._pump_loop, name="mqtt-spool-pump", daemon=True)
        self._pump.start()
        if wait_s > 0 and not self._connect_event.wait(wait_s):
            log.warning("event=broker-unreachable agent=%s host=%s port=%d action=spooling",
                        self.agent_id, s.host, s.port)
        if self.refused:
            self.stop()
            raise BrokerUnavailable(f"{s.host}:{s.port} refused agent {self.agent_id}: {self.refused} "
                                    "(check MQTT username/password in the device file or MQTT_USERNAME/MQTT_PASSWORD)")
        return self

    def subscribe(self, topic: str, on_payload: Callable[[bytes], None]) -> None:
        """Receive ``topic`` (QoS 1), renewed on every reconnect; ``on_payload`` runs on paho's thread."""
        self.client.message_callback_add(topic, lambda client, userdata, msg: on_payload(msg.payload))
        self._subscriptions.append(topic)
        if self._connected:
            self.client.subscribe(topic, qos=1)

    # ------------------------------------------------------------------ publishing

    @property
    def connected(self) -> bool:
        return self._connected

    def new_id(self) -> tuple[str, int]:
        """A fresh ``msg_id`` and its sequence number, for the message about to be published."""
        return self.sequence.next_id()

    def publish(self, message: contract.AgentMessage, seq: int) -> None:
        """Publish (or spool) one agent-tier message whose ``msg_id`` came from :meth:`new_id`."""
        topic = self._topics.get(message.kind)
        if topic is None:
            topic = self._topics[message.kind] = contract.agent_topic(self.store_id, self.agent_id, message.kind)
        self.publish_raw(seq, topic, contract.encode_agent(message))

    def publish_raw(self, seq: int, topic: str, payload: bytes) -> None:
        with self._lock:
            if self._connected and not self._draining and self.spool.depth == 0:
                info = self.client.publish(topic, payload, qos=1)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    self._track(info.mid, (seq, topic, payload), self._direct)
                    self.published += 1
                    return
            self.spool.append(seq, topic, payload)
        self._wake.set()

    def _track(self, mid: int, row: tuple[int, str, bytes], into: dict[int, tuple[int, str, bytes]]) -> None:
        with self._acked:
            if mid in self._early_acks:  # the PUBACK overtook us
                self._early_acks.discard(mid)
            else:
                into[mid] = row

    def _publish_status(self, state: str) -> mqtt.MQTTMessageInfo:
        status = contract.Status(agent=self.agent_id, state=state, ts=time.time())
        info = self.client.publish(self.status_topic, contract.encode_agent(status), qos=1, retain=True)
        self._track(info.mid, (0, "", b""), self._untracked)
        return info

    # ------------------------------------------------------------------ paho callbacks (paho's thread)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: mqtt.ReasonCode, properties: Properties | None = None) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            log.error("event=broker-refused agent=%s reason=%s", self.agent_id, reason_code)
            if self.refused in _REFUSED_CODES:
                client.disconnect()  # wrong credentials do not get better by retrying every second
            self._connect_event.set()
            return
        self.refused = None
        log.info("event=mqtt-connected agent=%s host=%s port=%d session_present=%s",
                 self.agent_id, self.settings.host, self.settings.port, flags.session_present)
        self._publish_status("online")
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        with self._lock:
            self._draining = True  # until the pump has checked the spool
            self._connected = True
        self._connect_event.set()
        self._wake.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: mqtt.ReasonCode, properties: Properties | None = None) -> None:
        was = self._connected
        self._connected = False
        with self._acked:
            self._acked.notify_all()
        if was and not self._stop.is_set():
            log.warning("event=mqtt-disconnected agent=%s reason=%s action=spooling", self.agent_id, reason_code)

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: mqtt.ReasonCode,
                    properties: Properties) -> None:
        with self._acked:
            if (self._direct.pop(mid, None) is None and self._replaying.pop(mid, None) is None
                    and self._untracked.pop(mid, None) is None):
                self._early_acks.add(mid)
            self._acked.notify_all()

    # ------------------------------------------------------------------ spool replay (pump thread)

    def _pump_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self._connected:
                try:
                    self._drain()
                except Exception:  # the pump must outlive any surprise; the spool keeps the data
                    log.exception("event=spool-drain-failed agent=%s", self.agent_id)
                    self._stop.wait(1.0)

    def _drain(self) -> None:
        with self._lock:
            if not self._draining and self.spool.depth == 0:
                return
            self._draining = True
        # paho resends what it had in flight before the disconnect; those are older than the spool.
        deadline = time.monotonic() + RESEND_WAIT_S
        with self._acked:
            while self._direct and self._connected and time.monotonic() < deadline:
                self._acked.wait(0.2)
        replayed = 0
        while self._connected and not self._stop.is_set():
            rows = self.spool.peek(DRAIN_BATCH)
            if not rows:
                with self._lock:
                    if self.spool.depth == 0:
                        self._draining = False
                        if replayed:
                            log.info("event=spool-replayed agent=%s messages=%d", self.agent_id, replayed)
                        return
                continue
            acked = self._send_batch(rows)
            self.spool.remove(acked)
            replayed += len(acked)
            if len(acked) < len(rows):
                return  # disconnected mid-batch; the rest stays spooled

    def _send_batch(self, rows: list[tuple[int, str, bytes]]) -> list[int]:
        sent: dict[int, int] = {}  # mid -> seq
        for seq, topic, payload in rows:
            info = self.client.publish(topic, bytes(payload), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            sent[info.mid] = seq
            self._track(info.mid, (seq, topic, b""), self._replaying)
        deadline = time.monotonic() + 30.0
        with self._acked:
            while (self._replaying.keys() & sent.keys()) and self._connected and time.monotonic() < deadline:
                self._acked.wait(0.2)
            pending = self._replaying.keys() & sent.keys()
            for mid in pending:
                del self._replaying[mid]
        self.published += len(sent) - len(pending)
        return [seq for mid, seq in sent.items() if mid not in pending]

    # ------------------------------------------------------------------ shutdown

    def stop(self, *, flush_s: float = 2.0) -> None:
        """Say offline, give in-flight messages ``flush_s`` to be acknowledged, spool the rest, disconnect."""
        if self._stop.is_set():
            return
        deadline = time.monotonic() + flush_s
        with self._acked:
            while self._direct and self._connected and time.monotonic() < deadline:
                self._acked.wait(0.1)
        self._stop.set()
        self._wake.set()
        if self._pump is not None:
            self._pump.join(timeout=5)
        with self._acked:
            leftovers = sorted(self._direct.values())
            self._direct.clear()
        if leftovers:
            self.spool.append_many(leftovers)
            log.info("event=spooled-unacknowledged agent=%s messages=%d", self.agent_id, len(leftovers))
        if self._connected:
            info = self._publish_status("offline")
            try:
                info.wait_for_publish(1.0)
            except (RuntimeError, ValueError) as exc:
                log.debug("event=offline-status-not-sent reason=%s", exc)
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def unique_client_id(agent_id: str) -> str:
    """A client id for one-off tools (replay) that must not steal the running agent's session."""
    return f"floorwalker-{agent_id}-{uuid.uuid4().hex[:6]}"
