"""Publishing to the broker: QoS 1, persistent session, last will, and a disk spool when it is away.

Two modes, switched under one lock so no message can slip between them:

* **direct** — connected and nothing spooled: the message goes to an in-memory outbox that the I/O
  thread hands to paho (QoS 1). paho keeps it until the broker acknowledges it, and with a
  persistent session (MQTT 5, ``clean_start=False``) resends it after a reconnect.
* **spooling** — disconnected, or older messages still in the spool: append to the spool. After a
  reconnect the I/O thread first lets paho resend what it had in flight (older than anything
  spooled), then replays the spool in order, removing rows only once the broker acknowledged them.

One I/O thread owns paho: it connects and reconnects with back-off, runs paho's network loop,
publishes the outbox in batches and replays the spool, so paho is only ever called from one thread
and the pipeline's thread only appends to a deque or the spool.
On a disconnect, what paho held unacknowledged is written to the spool at once, so a crash
while the broker is away loses nothing; a crash while connected loses at most the outbox and the
messages in flight at that moment. A replay can deliver a message twice (acknowledgement lost in a disconnect), which is
why every message carries a unique ``msg_id`` and the aggregator deduplicates by it.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from collections import deque
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
# At most this many outbox messages handed to paho per turn of the I/O loop, so the broker's PUBACKs
# are read between batches. Unbounded, a pipeline that had starved the I/O thread (bench_agent: all
# ~60,000 messages) went out in one go: the socket's send buffer filled, every further publish()
# retried a send that failed, and the PUBACKs waited. paho's thread, per message: 56-62 -> 50-53 us
# (interleaved 3x, load ~2).
FLUSH_BATCH = 1000
RESEND_WAIT_S = 10.0  # how long to let paho resend its in-flight messages before replaying the spool


class Publisher:
    """Publishes agent-tier messages for one agent; spools while the broker is unreachable."""

    def __init__(self, *, agent_id: str, store_id: str, settings: MqttSettings, spool: Spool,
                 sequence: Sequence, client_id: str | None = None, reconnect_max_s: float = 10.0) -> None:
        self.agent_id = agent_id
        self.store_id = store_id
        self.settings = settings
        self.spool = spool
        self.sequence = sequence
        self.reconnect_max_s = reconnect_max_s
        self.published = 0
        self.refused: str | None = None
        self.status_topic = contract.agent_topic(store_id, agent_id, "status")
        self._topics: dict[str, str] = {}
        self._subscriptions: list[str] = []
        self._lock = threading.Lock()  # direct vs spool decisions: the pipeline's thread and the I/O thread
        self._connected = False
        self._draining = False
        self._outbox: deque[tuple[int, str, bytes]] = deque()
        # I/O-thread-only state
        self._socket_up = False
        self._ever_connected = False
        self._direct: dict[int, tuple[int, str, bytes]] = {}  # paho mid -> row, until PUBACK
        self._batch: dict[int, int] = {}  # mid -> spool seq of the replay batch in flight
        self._batch_acked: list[int] = []
        self._ignore: set[int] = set()  # mids whose PUBACK we do not track (status, abandoned batches)
        self._resend_deadline = 0.0
        self._replayed = 0
        self._stop = threading.Event()
        self._stop_deadline = 0.0
        self._connect_event = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = self._make_client(client_id or f"floorwalker-{agent_id}")

    @classmethod
    def for_device(cls, device: DeviceConfig, *, client_id: str | None = None) -> Publisher:
        """A publisher for a device file: its broker (env overrides applied), its spool and sequence."""
        spool = Spool(device.spool.path, max_messages=device.spool.max_messages)
        sequence = Sequence(device.agent_id, device.spool.path.with_suffix(".seq"))
        return cls(agent_id=device.agent_id, store_id=device.store.id, settings=device.mqtt.with_env(), spool=spool,
                   sequence=sequence, client_id=client_id)

    # ------------------------------------------------------------------ set-up

    def _make_client(self, client_id: str) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        if s.tls:
            client.tls_set(ca_certs=s.ca_file or None, certfile=s.cert_file or None, keyfile=s.key_file or None,
                           cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(self.status_topic, contract.encode_agent(contract.offline(self.agent_id)), qos=1, retain=True)
        # No in-flight limit: with one (it was 1000) paho scans every unacknowledged message on each
        # PUBACK for one queued behind the limit, and at a busy sniffer's rate that scan was the
        # agent's bottleneck (agent.lines_per_s 6.9k -> 9.6-10.7k lines/s without it, interleaved
        # runs). Without a limit paho sends at once and skips the scan; mosquitto 2.0 takes it
        # (5,000 QoS 1 in flight from one v5 client: all delivered, every PUBACK "Success").
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.enable_logger(logging.getLogger("agent.mqtt"))  # paho's own lines: topics and sizes, no payloads
        # publish() (and every packet paho queues) waits for the I/O loop's next write instead of
        # calling send() at once: a batch goes out in a few writes, and mosquitto reads and
        # acknowledges it in a few (paho's thread 50-53 -> 45-52 us a message, mosquitto's 3.3 -> 2.2 us
        # a line; interleaved 3x, load ~2). paho's public hook for clients that run their own loop.
        client.on_socket_register_write = _write_later
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def start(self, *, wait_s: float = 5.0) -> Publisher:
        """Connect in the background; raise BrokerUnavailable only if the broker refuses our credentials.

        An unreachable broker is not an error: the agent keeps sensing and spools."""
        self._thread = threading.Thread(target=self._io_loop, name="mqtt-io", daemon=True)
        self._thread.start()
        s = self.settings
        if wait_s > 0 and not self._connect_event.wait(wait_s):
            log.warning("event=broker-unreachable agent=%s host=%s port=%d action=spooling",
                        self.agent_id, s.host, s.port)
        if self.refused:
            self.stop(flush_s=0)
            raise BrokerUnavailable(f"{s.host}:{s.port} refused agent {self.agent_id}: {self.refused} "
                                    "(check MQTT username/password in the device file or MQTT_USERNAME/MQTT_PASSWORD)")
        return self

    def subscribe(self, topic: str, on_payload: Callable[[bytes], None]) -> None:
        """Receive ``topic`` (QoS 1) from now on and after every reconnect; call before :meth:`start`.

        ``on_payload`` runs on the I/O thread: hand the data over, do not work there."""
        self.client.message_callback_add(topic, lambda client, userdata, msg: on_payload(msg.payload))
        self._subscriptions.append(topic)

    # ------------------------------------------------------------------ publishing (any thread)

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
                self._outbox.append((seq, topic, payload))
                return
            self.spool.append(seq, topic, payload)

    # ------------------------------------------------------------------ the I/O thread

    def _io_loop(self) -> None:
        backoff_s = 0.5
        while True:
            if self._stop.is_set() and (self._stop_deadline <= time.monotonic() or not self._connected
                                        or not (self._outbox or self._direct)):
                break
            if not self._socket_up:
                if self._stop.is_set():
                    break
                if not self._try_connect():
                    self._spool_outbox()
                    self._stop.wait(backoff_s)
                    backoff_s = min(self.reconnect_max_s, backoff_s * 2)
                    continue
                backoff_s = 0.5 if not self.refused else self.reconnect_max_s
            rc = self.client.loop(timeout=0.005)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self._socket_up = False
                self._set_disconnected(f"loop rc={rc}")
                continue
            try:
                self._flush_outbox()
                self._drain_step()
            except Exception:  # the I/O thread must outlive any surprise; the spool keeps the data
                log.exception("event=publisher-io-failed agent=%s", self.agent_id)
                self._stop.wait(1.0)
        self._shutdown()

    def _try_connect(self) -> bool:
        s = self.settings
        try:
            if self._ever_connected:
                self.client.reconnect()
            else:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = SESSION_EXPIRY_S
                self.client.connect(s.host, s.port, keepalive=s.keepalive_s, clean_start=False, properties=props)
                self._ever_connected = True
        except (OSError, ValueError, ssl.SSLError) as exc:
            log.debug("event=connect-failed agent=%s host=%s port=%d reason=%s", self.agent_id, s.host, s.port, exc)
            return False
        self._socket_up = True
        return True

    def _flush_outbox(self) -> None:
        if not self._connected:
            self._spool_outbox()
            return
        outbox, client, direct = self._outbox, self.client, self._direct
        batch = min(len(outbox), FLUSH_BATCH)
        if not batch:
            return
        for _ in range(batch):
            row = outbox.popleft()
            info = client.publish(row[1], row[2], qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                outbox.appendleft(row)
                self._spool_outbox()
                return
            direct[info.mid] = row
            self.published += 1
        client.loop_write()  # what does not fit the socket now, client.loop() writes when it can

    def _spool_outbox(self) -> None:
        with self._lock:
            if self._outbox:
                rows = list(self._outbox)
                self._outbox.clear()
                self.spool.append_many(rows)

    def _drain_step(self) -> None:
        if not self._connected or not self._draining:
            return
        if self._direct and time.monotonic() < self._resend_deadline:
            return  # paho is still resending what it had in flight before the disconnect: older than the spool
        if self._batch:
            return  # waiting for the broker to acknowledge the batch in flight
        if self._batch_acked:
            self.spool.remove(self._batch_acked)
            self._replayed += len(self._batch_acked)
            self._batch_acked = []
        rows = self.spool.peek(DRAIN_BATCH)
        if not rows:
            with self._lock:
                if self.spool.depth == 0 and not self._outbox:
                    self._draining = False
            if not self._draining and self._replayed:
                log.info("event=spool-replayed agent=%s messages=%d", self.agent_id, self._replayed)
                self._replayed = 0
            return
        for seq, topic, payload in rows:
            info = self.client.publish(topic, bytes(payload), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            self._batch[info.mid] = seq
            self.published += 1

    def _publish_status(self, state: str) -> mqtt.MQTTMessageInfo:
        status = contract.Status(agent=self.agent_id, state=state, ts=time.time())
        info = self.client.publish(self.status_topic, contract.encode_agent(status), qos=1, retain=True)
        self._ignore.add(info.mid)
        return info

    def _shutdown(self) -> None:
        """On the I/O thread: say offline, disconnect, and spool whatever was not acknowledged."""
        if self._connected:
            info = self._publish_status("offline")
            deadline = time.monotonic() + 1.0
            while not info.is_published() and time.monotonic() < deadline:
                if self.client.loop(timeout=0.02) != mqtt.MQTT_ERR_SUCCESS:
                    break
        self._connected = False
        self.client.disconnect()
        self.client.loop_write()  # the DISCONNECT itself (queued, see _write_later): a clean exit, no last will
        leftovers = sorted(self._direct.values())
        self._direct.clear()
        if leftovers:
            self.spool.append_many(leftovers)
            log.info("event=spooled-unacknowledged agent=%s messages=%d", self.agent_id, len(leftovers))
        self._spool_outbox()
        if self._batch_acked:
            self.spool.remove(self._batch_acked)
            self._batch_acked = []

    # ------------------------------------------------------------------ paho callbacks (I/O thread)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: mqtt.ReasonCode, properties: Properties | None = None) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            log.error("event=broker-refused agent=%s reason=%s", self.agent_id, reason_code)
            self._connect_event.set()
            return
        self.refused = None
        log.info("event=mqtt-connected agent=%s host=%s port=%d session_present=%s",
                 self.agent_id, self.settings.host, self.settings.port, flags.session_present)
        # Subscribe before announcing "online": the broker handles one connection's packets in order,
        # so whoever sees the status knows the agent already receives its commands (scenarios).
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self._publish_status("online")
        self._resend_deadline = time.monotonic() + RESEND_WAIT_S
        with self._lock:
            # New messages queue behind the spool until it has been replayed. With nothing spooled
            # there is nothing older to wait for (what paho held unacknowledged went to the spool on
            # the disconnect): they go straight out, instead of into the spool until the I/O thread's
            # next turn (bench_agent's first messages did, and a busy pipeline keeps the I/O thread
            # from that turn for a long while, so all that followed went to the spool too).
            self._draining = self.spool.depth > 0
            self._connected = True
        self._connect_event.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: mqtt.ReasonCode, properties: Properties | None = None) -> None:
        self._set_disconnected(str(reason_code))

    def _set_disconnected(self, reason: str) -> None:
        with self._lock:
            was, self._connected = self._connected, False
        # A replay batch in flight stays in the spool; its late acknowledgements are not ours to count.
        self._ignore.update(self._batch)
        self._batch.clear()
        # What paho sent but the broker never acknowledged lives only in paho's memory: put it on disk
        # now, so a SIGKILL before the broker returns loses nothing. paho may still resend it from
        # memory after a reconnect; the duplicates carry the same msg_id and the aggregator drops them.
        if self._direct:
            unacked = sorted(self._direct.values())
            self._ignore.update(self._direct)
            self._direct.clear()
            self.spool.append_many(unacked)
            log.info("event=spooled-unacknowledged agent=%s messages=%d", self.agent_id, len(unacked))
        if was and not self._stop.is_set():
            log.warning("event=mqtt-disconnected agent=%s reason=%s action=spooling", self.agent_id, reason)

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: mqtt.ReasonCode,
                    properties: Properties) -> None:
        if self._direct.pop(mid, None) is not None:
            return
        seq = self._batch.pop(mid, None)
        if seq is not None:
            self._batch_acked.append(seq)
            return
        self._ignore.discard(mid)

    # ------------------------------------------------------------------ shutdown

    def stop(self, *, flush_s: float = 2.0) -> None:
        """Give queued and in-flight messages ``flush_s`` to be acknowledged, say offline, spool the rest."""
        if self._stop.is_set():
            return
        self._stop_deadline = time.monotonic() + flush_s
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=flush_s + 10)
            self._thread = None
        else:
            self._spool_outbox()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _write_later(client: mqtt.Client, userdata: object, sock: object) -> None:
    """paho's ``on_socket_register_write``: nothing to do, the I/O loop writes (Publisher._make_client)."""


def unique_client_id(agent_id: str) -> str:
    """A client id for one-off tools (replay) that must not steal the running agent's session."""
    return f"floorwalker-{agent_id}-{uuid.uuid4().hex[:6]}"
