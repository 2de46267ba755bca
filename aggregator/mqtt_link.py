"""The aggregator's one MQTT connection: paho in its own thread, manual acks, reconnect with back-off.

Why it is built this way:

* paho runs its network loop in its own thread (``loop_start``); the asyncio loop never blocks
  on a socket. Received messages cross into asyncio in exactly one place, :meth:`_deliver`
  (a deque plus one ``loop.call_soon_threadsafe`` wake-up per burst, not per message).
* QoS 1, a fixed client id and a persistent session (``clean_session=False``): while the
  aggregator is down, the broker keeps what agents publish, and hands it over on reconnect.
* Manual acknowledgement (``manual_ack_set(True)``): a message is acknowledged to the broker
  only after the SQLite transaction holding it has committed (see :mod:`aggregator.store`), so
  a kill -9 loses nothing; the broker redelivers, and the message id makes redelivery harmless.
* ``publish`` is thread-safe and non-blocking: messages wait in one ordered outbox until the
  event loop's current callback ends (a slice of ingest), then go out in that order. QoS 0
  messages (the customer tier's moves) are framed here and handed to paho's writer as one
  block per run; paho's own ``publish`` costs ~90 µs per message here once its QoS 1 in-flight
  bookkeeping and PUBACK handling are counted (py-spy of the ingest benchmark: a quarter of all
  CPU). QoS 1 messages still go through ``client.publish``, in order, for paho's retries.
* Reads go through a read-ahead buffer (:class:`_ReadAheadSocket`): paho asks the socket for one
  byte of command, one byte per remaining-length byte, then the body, and goes back to
  ``select`` after every packet. Under a backlog that is four syscalls and a ``select`` per
  message; with the buffer it is one ``recv`` per 256 KiB and one ``select`` per buffer.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import paho.mqtt.client as mqtt

from agent.config import MqttSettings

log = logging.getLogger(__name__)

_PUBACK = struct.Struct("!BBH")
_RAW_BYTES = 0  # label for pre-framed packets in paho's out queue: neither PUBLISH nor DISCONNECT
MAX_DRAIN = 2000  # messages handed to the loop per callback, so HTTP stays responsive under load
READ_AHEAD_BYTES = 256 * 1024
PACKETS_PER_READ = 2000  # packets parsed from the buffer before paho's loop checks keepalive and writes


class _ReadAheadSocket:
    """A socket (plain or TLS) whose ``recv`` is served from a buffer filled by large reads.

    ``pending()`` is what paho already asks a TLS socket (bytes readable without waiting), so its
    loop skips ``select`` while the buffer holds data. Everything else goes to the real socket."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            buf = self._sock.recv(READ_AHEAD_BYTES)  # BlockingIOError / SSLWantRead propagate to paho
            if not buf:
                return b""  # the peer closed the connection
            self._buf, pos = buf, 0
        end = pos + bufsize
        self._pos = min(end, len(buf))
        return buf[pos:end]

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buf) - self._pos + inner

    def __getattr__(self, name: str) -> Any:  # fileno, send, setblocking, close, ...
        return getattr(self._sock, name)


class _Client(mqtt.Client):
    """paho's client reading through :class:`_ReadAheadSocket`, many packets per ``select``.

    With ``on_publishes`` set, complete QoS 0/1 PUBLISH packets waiting in the read-ahead buffer
    are parsed here, a buffer at a time, and handed over as one list: paho's own path costs
    ~20 µs a message (a dict-based packet state machine, an ``MQTTMessage`` with properties, a
    topic-filter match and a callback per message); this one ~2 µs. Everything else (CONNACK,
    SUBACK, PUBACK, PINGRESP, QoS 2, a packet cut by the buffer's end, anything malformed) still
    goes through paho's ``_packet_read``, and paho's connection, keepalive and reconnect logic is
    untouched. With manual acks paho does nothing else for a QoS 0/1 PUBLISH than call back."""

    on_publishes: Callable[[list[tuple[bytes, bytes, int, int]]], None] | None = None

    def _create_socket(self) -> Any:
        return _ReadAheadSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        for _ in range(PACKETS_PER_READ):
            sock = self._sock
            if rc != mqtt.MQTT_ERR_SUCCESS or sock is None or not sock.pending():
                break
            if self._read_publishes(sock):
                continue
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == mqtt.MQTT_ERR_AGAIN:
                return mqtt.MQTT_ERR_SUCCESS
        return rc

    def _read_publishes(self, sock: Any) -> int:
        """Parse the complete QoS 0/1 PUBLISH packets at the buffer's head; returns how many."""
        callback = self.on_publishes
        if callback is None or type(sock) is not _ReadAheadSocket or self._in_packet["command"] != 0:
            return 0  # paho is half-way through a packet: let it finish
        buf, pos = sock._buf, sock._pos
        end = len(buf)
        out: list[tuple[bytes, bytes, int, int]] = []
        while pos < end:
            command = buf[pos]
            qos = (command >> 1) & 3
            if command >> 4 != 3 or qos > 1:
                break  # not a PUBLISH, or QoS 2: paho's
            i, length, shift = pos + 1, 0, 0
            while i < end and i - pos <= 4:
                byte = buf[i]
                length |= (byte & 127) << shift
                i += 1
                if not byte & 128:
                    break
                shift += 7
            else:
                break  # cut by the buffer's end, or a malformed length: paho's
            body_end = i + length
            if body_end > end or length < 2:
                break
            topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
            if qos:
                if topic_end + 2 > body_end:
                    break  # malformed: paho reports it
                mid = (buf[topic_end] << 8) | buf[topic_end + 1]
                out.append((buf[i + 2:topic_end], buf[topic_end + 2:body_end], mid, qos))
            else:
                if topic_end > body_end:
                    break
                out.append((buf[i + 2:topic_end], buf[topic_end:body_end], 0, 0))
            pos = body_end
        if not out:
            return 0
        sock._pos = pos
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        callback(out)
        return len(out)


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None: ...


class Incoming(NamedTuple):
    """One received message as the loop sees it; ``mid`` and ``qos`` are needed to ack it.

    A named tuple rather than a frozen dataclass: built tens of thousands of times a second in
    the MQTT thread, and a tuple costs a quarter of the time."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received: float  # time.time() when paho handed it over
    decoded: Any = None  # the payload already decoded (by the MQTT process), or None: decode it here


class NullPublisher:
    """Stands in for MQTT when the aggregator runs without a broker (``mqtt_enabled=False``)."""

    def __init__(self) -> None:
        self.published: collections.deque[tuple[str, bytes]] = collections.deque(maxlen=1000)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.published.append((topic, payload))


STATE_FIELDS = ("connected", "subscribed", "connects", "disconnects", "published", "publish_errors",
                "dropped_qos0", "received", "last_error")


class LinkBase:
    """What :class:`MqttLink` and :class:`~aggregator.mqtt_process.ProcessMqttLink` share: the
    connection's state and counters (``STATE_FIELDS``: what /health and /metrics read), and an
    ordered outbox that goes out when the event loop's current callback ends."""

    def __init__(self, settings: MqttSettings, client_id: str, subscriptions: list[str],
                 on_batch: Callable[[list[Incoming]], None] | None) -> None:
        self.settings = settings
        self.client_id = client_id
        self.subscriptions = subscriptions
        self.on_batch = on_batch
        self.connected = False
        self.subscribed = False  # the broker acknowledged our subscriptions on this connection
        self.connects = 0
        self.disconnects = 0
        self.published = 0
        self.publish_errors = 0
        self.dropped_qos0 = 0  # QoS 0 messages published while disconnected (QoS 0 is not queued)
        self.received = 0
        self.last_error = ""
        self._outbox: collections.deque[tuple[str, bytes, int, bool]] = collections.deque()
        self._flush_scheduled = False
        self._paused = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # (topic, online, offline): retained availability, offline set as the last will (set before start)
        self.availability: tuple[str, bytes, bytes] | None = None

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in STATE_FIELDS}

    def pause(self) -> None:
        """Stop handing messages to the loop (shutdown: what arrives now is left unacked)."""
        self._paused = True

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Queue a message for the broker; never blocks, never raises on a broker outage.

        It goes out, in publishing order, when the event loop's current callback ends."""
        self._outbox.append((topic, payload, qos, retain))
        if not self._flush_scheduled:
            loop = self._loop
            if loop is None or loop.is_closed():
                self.flush()
                return
            self._flush_scheduled = True
            try:
                loop.call_soon_threadsafe(self.flush)
            except RuntimeError:  # the loop closed meanwhile
                self._flush_scheduled = False
                self.flush()

    def flush(self) -> None:
        raise NotImplementedError


class MqttLink(LinkBase):
    """Subscribe to ``subscriptions`` and hand messages to ``on_batch`` on the asyncio loop.

    With ``on_receive`` they go to that instead, from paho's thread, a read at a time (the MQTT
    process passes them on to the aggregator without a hand-over to its own loop)."""

    def __init__(self, settings: MqttSettings, client_id: str, subscriptions: list[str], *,
                 on_batch: Callable[[list[Incoming]], None] | None = None,
                 on_receive: Callable[[list[Incoming]], None] | None = None,
                 reconnect_min_s: float = 1.0, reconnect_max_s: float = 30.0,
                 availability: tuple[str, bytes, bytes] | None = None) -> None:
        super().__init__(settings, client_id, subscriptions, on_batch)
        self.availability = availability
        self.on_receive = on_receive
        self._inbox: collections.deque[Incoming] = collections.deque()
        self._scheduled = False
        client = _Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=mqtt.MQTTv311)
        client.manual_ack_set(True)
        # No in-flight limit on what we publish (the customer tier's QoS 1 enter/exit/browsing): with
        # one, paho scans every unacknowledged message on each PUBACK for one queued behind the limit
        # (_update_inflight), and under load, with hundreds awaiting their PUBACK, that was ~40 µs a
        # PUBACK (py-spy of the ingest benchmark's MQTT process). Without one paho sends at once and
        # skips the scan; max_queued still bounds what it holds while disconnected.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(100_000)
        client.reconnect_delay_set(min_delay=int(max(1, reconnect_min_s)), max_delay=int(max(1, reconnect_max_s)))
        if settings.username:
            client.username_pw_set(settings.username, settings.password or None)
        if settings.tls or settings.ca_file:
            context = ssl.create_default_context(cafile=settings.ca_file or None)
            if settings.cert_file:
                context.load_cert_chain(settings.cert_file, settings.key_file or None)
            client.tls_set_context(context)
        if availability is not None:
            client.will_set(availability[0], availability[2], qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publishes = self._on_publishes
        self.client = client

    # ------------------------------------------------------------------ lifecycle (event loop)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; paho keeps reconnecting with back-off until ``stop``."""
        self._loop = loop
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s)
        self.client.loop_start()
        log.info("event=mqtt-connecting host=%s port=%d client_id=%s tls=%s", self.settings.host,
                 self.settings.port, self.client_id, bool(self.settings.tls or self.settings.ca_file))

    def stop(self) -> None:
        """Disconnect cleanly; unacknowledged messages stay with the broker for the next start."""
        self._paused = True
        self.flush()
        if self.availability is not None and self.connected:
            self.client.publish(self.availability[0], self.availability[2], qos=1, retain=True)
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        self.connected = False

    @property
    def inbox_depth(self) -> int:
        return len(self._inbox)

    # ------------------------------------------------------------------ paho thread

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any = None) -> None:
        if reason_code.is_failure:
            self.last_error = str(reason_code)
            log.error("event=mqtt-connect-refused reason=%s host=%s", reason_code, self.settings.host)
            return
        self.connected = True
        self.connects += 1
        session = getattr(flags, "session_present", False)
        log.info("event=mqtt-connected host=%s port=%d session_present=%s", self.settings.host,
                 self.settings.port, session)
        if self.availability is not None:
            client.publish(self.availability[0], self.availability[1], qos=1, retain=True)
        if self.subscriptions:
            client.subscribe([(topic, 1) for topic in self.subscriptions])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any,
                      properties: Any = None) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            self.last_error = f"subscription refused: {failed[0]}"
            log.error("event=mqtt-subscribe-refused reason=%s topics=%s", failed[0], self.subscriptions)
        else:
            self.subscribed = True

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any = None) -> None:
        if self.connected:
            self.disconnects += 1
        self.connected = False
        self.subscribed = False
        if not self._paused:
            log.warning("event=mqtt-disconnected reason=%s reconnect=auto", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """What paho's own path delivers (a packet the fast path left to it)."""
        if self._paused:
            return  # not acknowledged: the broker redelivers after the restart
        self._deliver([Incoming(msg.topic, msg.payload, msg.mid, msg.qos, time.time())])

    def _on_publishes(self, packets: list[tuple[bytes, bytes, int, int]]) -> None:
        """A buffer's worth of PUBLISH packets from :meth:`_Client._read_publishes`, in order."""
        if self._paused:
            return
        now = time.time()
        # mosquitto refuses a topic that is not UTF-8, so "replace" only matters for a rogue broker;
        # the result then matches no agent topic and is dead-lettered as bad-topic
        self._deliver([Incoming(topic.decode("utf-8", "replace"), payload, mid, qos, now)
                       for topic, payload, mid, qos in packets])

    def _deliver(self, items: list[Incoming]) -> None:
        self.received += len(items)
        if self.on_receive is not None:
            self.on_receive(items)
            return
        self._inbox.extend(items)
        self._wake()

    def _wake(self) -> None:
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop closed during shutdown
                self._scheduled = False

    # ------------------------------------------------------------------ event loop

    def _drain(self) -> None:
        self._scheduled = False
        inbox = self._inbox
        n = min(len(inbox), MAX_DRAIN)
        items = [inbox.popleft() for _ in range(n)]
        if inbox:
            self._scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._drain)
        if items and self.on_batch is not None and not self._paused:
            self.on_batch(items)

    # ------------------------------------------------------------------ any thread

    def ack(self, items: list[tuple[int, int]]) -> None:
        """Acknowledge ``(mid, qos)`` pairs to the broker (called by the writer after a commit)."""
        client = self.client
        queue_packet = getattr(client, "_packet_queue", None)
        qos1 = [mid for mid, qos in items if qos == 1]
        if queue_packet is not None and len(qos1) > 1:
            # One write for a whole batch of PUBACKs: byte for byte what client.ack(mid, 1) queues per
            # message (0x40, length 2, mid), through paho's own outgoing queue, so ordering and partial
            # writes stay paho's business. Saves a syscall per message at tens of thousands per second.
            for start in range(0, len(qos1), 4096):
                chunk = qos1[start:start + 4096]
                queue_packet(mqtt.PUBACK, b"".join(_PUBACK.pack(0x40, 2, mid) for mid in chunk), 0, 0)
        else:
            for mid in qos1:
                client.ack(mid, 1)
        for mid, qos in items:
            if qos == 2:
                client.ack(mid, qos)

    def publish_batch(self, messages: list[tuple[str, bytes, int, bool]]) -> None:
        """Publish ``(topic, payload, qos, retain)`` messages now, in order, from the calling thread.

        For a process whose only publisher is one thread (the MQTT process's command reader):
        ``publish`` would hand the flush to the event loop; this skips that hop."""
        self._outbox.extend(messages)
        self.flush()

    def flush(self) -> None:
        """Hand the outbox to paho: runs of QoS 0 messages as one block, QoS 1 one by one."""
        self._flush_scheduled = False
        outbox = self._outbox
        run: list[tuple[str, bytes, bool]] = []
        while outbox:
            topic, payload, qos, retain = outbox.popleft()
            if qos == 0:
                run.append((topic, payload, retain))
                continue
            if run:
                self._publish_qos0(run)
                run = []
            self._publish_now(topic, payload, qos, retain)
        if run:
            self._publish_qos0(run)

    def _publish_qos0(self, messages: list[tuple[str, bytes, bool]]) -> None:
        if not self.connected:
            self.dropped_qos0 += len(messages)  # QoS 0 is at most once: nobody is listening now
            return
        packets = []
        for topic, payload, retain in messages:
            try:
                packets.append(_qos0_packet(topic, payload, retain))
            except ValueError as exc:
                self.publish_errors += 1
                log.warning("event=publish-failed topic=%s error=%r", topic[:120], exc)
        if packets:
            # paho's own out queue (as for the PUBACKs in ack()), so its thread writes the block
            # in order with everything else and handles partial writes.
            self.client._packet_queue(_RAW_BYTES, b"".join(packets), 0, 0)
            self.published += len(packets)

    def _publish_now(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        try:
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, OSError) as exc:
            self.publish_errors += 1
            log.warning("event=publish-failed topic=%s error=%r", topic, exc)
            return
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self.publish_errors += 1
        else:
            self.published += 1


def _qos0_packet(topic: str, payload: bytes, retain: bool) -> bytes:
    """An MQTT 3.1.1 PUBLISH packet at QoS 0 (no packet id): fixed header, topic, payload."""
    encoded = topic.encode()
    if not encoded or len(encoded) > 65535 or "+" in topic or "#" in topic:
        raise ValueError("not a topic one can publish to")
    body = len(encoded).to_bytes(2, "big") + encoded + payload
    remaining = len(body)
    if remaining > 268_435_455:
        raise ValueError("payload too large for MQTT")
    header = bytearray([0x30 | (1 if retain else 0)])
    while True:
        byte, remaining = remaining % 128, remaining // 128
        header.append(byte | 0x80 if remaining else byte)
        if not remaining:
            break
    return bytes(header) + body
