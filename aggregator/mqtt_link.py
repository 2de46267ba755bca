"""The aggregator's MQTT connection: MQTT 5 over the ``mqtt5`` codec, a network thread, manual acks.

Why it is built this way:

* The ``mqtt5`` package (a sans-I/O MQTT 5 codec in Rust, by aiomqtt's maintainer) encodes and
  decodes packets; this module is the connection around it. A read takes whatever the socket has
  (up to 256 KiB) and the codec parses every packet in it; the writes of one turn (a commit's
  PUBACKs, a slice's publishes) leave in one ``send``. paho's public API read one packet per call
  with four ``recv`` each and built a locked message object per PUBLISH: the MQTT process spent
  24-26 µs a message in it against 7.6-8.0 here, decoding and framing included (5.4-6.8 for
  the codec's asyncio prototype; ``run.py mqtt_routes``, docs/PERFORMANCE.md). Nothing private
  of any library is used.
* One network thread per link: ``poll`` on the socket and a wake-up socket of ours, reads, the
  commands other threads queue (``ack``, ``publish_batch``, ``stop``), writes, keepalive. The
  connection's state is only ever touched there, and the asyncio loop never blocks. Received
  messages go out a read at a time, to ``on_receive`` (in the thread) or through a deque and one
  ``loop.call_soon_threadsafe`` per read to ``on_batch`` on the event loop.
* QoS 1, a fixed client id and a persistent session (clean start off, a session that never
  expires): while the aggregator is down, the broker keeps what agents publish and hands it over
  on reconnect. Reconnection, with doubling back-off, is this thread's too.
* Manual acknowledgement: a message is acknowledged only after the SQLite transaction holding it
  has committed, so a kill -9 loses nothing; the broker redelivers, and the message id makes
  redelivery harmless.
* Each QoS 1 delivery gets a delivery id of this link's (:attr:`Incoming.mid`), and ``ack`` takes
  those, not MQTT packet ids: the broker reuses a packet id once it is acknowledged, so an
  acknowledgement sent twice (a writer killed between its commit's acknowledgements and telling
  the aggregator resends the batch) would otherwise acknowledge a newer message before it is
  stored. A delivery id is acknowledged once; a second time, or one from an earlier connection
  (the broker redelivers those under new ids), is counted in ``stale_acks`` and dropped.
* Our QoS 1 publishes (the customer tier's enter/exit, availability) stay in order: at most the
  broker's Receive Maximum are in flight (more would be refused), the rest wait in a queue; those
  a connection leaves unacknowledged are sent again, flagged duplicate, after the next CONNACK.
  QoS 0 while disconnected is dropped and counted (``dropped_qos0``).
* The socket is ``TCP_NODELAY``: a 4-byte PUBACK must not wait out the broker's delayed ACK
  (40 ms), or the broker's in-flight window for us stalls (latency p99 25-61 ms against 14-18).
  And we ACK at once (``TCP_QUICKACK`` after every read): mosquitto leaves Nagle on, so its next
  message to us waits for our ACK (see ``QUICKACK``).
* ``publish`` is thread-safe and non-blocking: messages wait in one ordered outbox until the
  event loop's current callback ends (a slice of ingest), then go to the network thread in that order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import mqtt5

from agent.config import MqttSettings

log = logging.getLogger(__name__)

# Acknowledge what the broker sent at once, not after the kernel's delayed-ACK wait (up to 40 ms): mosquitto
# leaves Nagle's algorithm on, so its next small message waits for our ACK, and on the reading connection
# (our publishes go on another) nothing else carries one back soon. Linux clears the flag as it sees fit:
# it is set again after every read. Publish -> WebSocket (run.py latency): p50 9.3-9.6 ms and p99 16-18 ms
# without, 0.80-0.82 ms and 3.3-3.6 ms with (2.4-2.7 and 15 ms when our publishes shared the connection).
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
MAX_DRAIN = 2000  # messages handed to the loop per callback, so HTTP stays responsive under load
READ_BYTES = 1 << 18  # one recv: a read parses every packet in up to this much
MISC_INTERVAL_S = 0.5  # keepalive pings and dead-connection detection
STOP_TIMEOUT_S = 5.0  # stop(): bounds sending the last publishes and the DISCONNECT, and the read to the broker's EOF
CONNECT_TIMEOUT_S = 5.0  # TCP and TLS handshake of one connection attempt (paho's too)
MAX_QUEUED = 100_000  # QoS 1 publishes held while disconnected or beyond the in-flight window
NEVER_EXPIRES = 0xFFFFFFFF  # session expiry interval: the session outlives any outage


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None: ...


class Incoming(NamedTuple):
    """One received message as the loop sees it; ``mid`` and ``qos`` are needed to ack it.

    A named tuple rather than a frozen dataclass: built tens of thousands of times a second in
    the MQTT thread, and a tuple costs a quarter of the time."""

    topic: str
    payload: bytes
    mid: int  # the link's delivery id, what ack() takes (not the MQTT packet id: the broker reuses those)
    qos: int
    received: float  # time.time() when the read that brought it ended
    decoded: Any = None  # the payload already decoded (by the MQTT process), or None: decode it here


class NullPublisher:
    """Stands in for MQTT when the aggregator runs without a broker (``mqtt_enabled=False``)."""

    def __init__(self) -> None:
        self.published: collections.deque[tuple[str, bytes]] = collections.deque(maxlen=1000)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.published.append((topic, payload))


STATE_FIELDS = ("connected", "subscribed", "connects", "disconnects", "published", "publish_errors",
                "dropped_qos0", "received", "stale_acks", "last_error")


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
        self.stale_acks = 0  # acknowledgements of deliveries already acknowledged, or of an earlier connection
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

    With ``on_receive`` they go to that instead, from the network thread, a read at a time (the
    MQTT process passes them on to the aggregator without a hand-over to its own loop)."""

    def __init__(self, settings: MqttSettings, client_id: str, subscriptions: list[str], *,
                 on_batch: Callable[[list[Incoming]], None] | None = None,
                 on_receive: Callable[[list[Incoming]], None] | None = None,
                 reconnect_min_s: float = 1.0, reconnect_max_s: float = 30.0,
                 availability: tuple[str, bytes, bytes] | None = None) -> None:
        super().__init__(settings, client_id, subscriptions, on_batch)
        self.availability = availability
        self.on_receive = on_receive
        self.reconnect_min_s = max(0.05, reconnect_min_s)
        self.reconnect_max_s = max(self.reconnect_min_s, reconnect_max_s)
        self._inbox: collections.deque[Incoming] = collections.deque()
        self._scheduled = False
        # QoS 1 deliveries not yet acknowledged: delivery id -> packet id. Delivery ids start at a random
        # point so that a replaced MQTT process never takes an acknowledgement meant for its predecessor.
        self._unacked: dict[int, int] = {}
        self._delivery_ids = itertools.count(random.SystemRandom().getrandbits(62))
        self._commands: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._woken = False
        self._stopping = False
        self._half_closed = False  # stopping: all written, our side shut, reading to the broker's end
        self._delay = self.reconnect_min_s  # the next reconnect's back-off
        self._retry_at = 0.0  # monotonic time of the next connection attempt
        self._next_misc = 0.0
        self._stop_by: float | None = None
        self._registered: int | None = None  # the broker socket's fd in the network thread's poll
        self._connected_at = 0.0  # monotonic time of the last TCP connect (the CONNACK must follow)
        self._thread: threading.Thread | None = None
        # the connection (network thread only)
        self._sock: socket.socket | None = None
        self._in = bytearray()
        self._out = bytearray()
        self._last_in = self._last_out = 0.0
        self._ping_sent = False
        self._receive_max = 65535  # the broker's, from its CONNACK: our QoS 1 publishes in flight at most
        self._keepalive_s = settings.keepalive_s  # ours, or the broker's Server Keep Alive from its CONNACK
        self._refusals: set[str] = set()  # PUBACK reason codes >= 0x80 already logged (once each)
        # our QoS 1 publishes sent and not yet acknowledged: packet id -> (topic, payload, retain), in sending
        # order; and what waits to be sent, in publishing order (QoS 0 too: it must not overtake a QoS 1)
        self._in_flight: dict[int, tuple[str, bytes, bool]] = {}
        self._waiting: collections.deque[tuple[str, bytes, int, bool]] = collections.deque()
        self._packet_ids = itertools.cycle(range(1, 65536))

    @property
    def in_flight(self) -> int:
        """Our publishes waiting to be sent, and the QoS 1 ones sent but not yet acknowledged."""
        return len(self._in_flight) + len(self._waiting)

    # ------------------------------------------------------------------ lifecycle (event loop)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; the network thread keeps reconnecting with back-off until ``stop``."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.client_id}", daemon=True)
        self._thread.start()
        log.info("event=mqtt-connecting host=%s port=%d client_id=%s tls=%s", self.settings.host,
                 self.settings.port, self.client_id, bool(self.settings.tls or self.settings.ca_file))

    def stop(self) -> None:
        """Send what is queued, disconnect cleanly; unacknowledged messages stay with the broker."""
        self._paused = True
        self.flush()
        self._command(self._shut_down)
        thread = self._thread
        if thread is not None:
            thread.join(STOP_TIMEOUT_S + CONNECT_TIMEOUT_S + 1.0)
            if thread.is_alive():  # its wake-up socket stays open: a closed one would make it spin
                log.error("event=mqtt-stop-stuck client_id=%s", self.client_id)
        if thread is None or not thread.is_alive():
            for sock in (self._wake_r, self._wake_w):
                sock.close()
        self.connected = self.subscribed = False

    @property
    def inbox_depth(self) -> int:
        return len(self._inbox)

    # ------------------------------------------------------------------ any thread

    def ack(self, items: list[tuple[int, int]]) -> None:
        """Acknowledge ``(mid, qos)`` pairs to the broker (called by the writer after a commit)."""
        if items:
            self._command(lambda: self._ack_now(items))

    def publish_batch(self, messages: list[tuple[str, bytes, int, bool]]) -> None:
        """Publish ``(topic, payload, qos, retain)`` messages, in order, without the event loop's
        hop (for a process whose only publisher is one thread: the MQTT process's command reader)."""
        if messages:
            self._command(lambda: self._publish_now(messages))

    def flush(self) -> None:
        """Hand the outbox to the network thread, in publishing order."""
        self._flush_scheduled = False
        outbox = self._outbox
        if outbox:
            self.publish_batch([outbox.popleft() for _ in range(len(outbox))])

    def _command(self, command: Callable[[], None]) -> None:
        self._commands.append(command)
        if not self._woken:
            self._woken = True
            try:
                self._wake_w.send(b"!")
            except (BlockingIOError, OSError):
                pass  # already has a byte waiting, or the link stopped

    # ------------------------------------------------------------------ the network thread

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        while True:
            try:
                if not self._step(poller):
                    break
            except Exception:  # a bug (ours or in a callback): keep the connection's thread alive
                log.exception("event=mqtt-loop-error client_id=%s", self.client_id)
                time.sleep(0.1)
        self._close("stopped")

    def _step(self, poller: Any) -> bool:
        """One turn of the network loop: connect, or wait for the socket, read, run commands, write.
        False once stopped."""
        sock = self._sock
        now = time.monotonic()
        if self._stopping:
            self._stop_by = self._stop_by or now + STOP_TIMEOUT_S
            if sock is None or now > self._stop_by:
                return False
            if not self._out and not self._half_closed:
                # All written: half-close and read on to the broker's end of stream. Closing with bytes
                # unread makes the kernel send a reset, and a reset can discard what the broker had not
                # read yet: the last PUBACKs (the backlog test saw 147-709 of 3,000 redelivered so).
                self._half_closed = True
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    return False
        if sock is None:
            if self._registered is not None:
                poller.unregister(self._registered)
                self._registered = None
            if now >= self._retry_at and not self._stopping:
                self._connect()  # blocks for the TCP and TLS handshakes: the back-off counts from its end,
                self._retry_at = time.monotonic() + self._delay  # so stop() gets a turn between attempts
                # (the CONNACK resets the back-off)
                self._delay = min(self._delay * 2, self.reconnect_max_s)
                return True
            timeout = self._retry_at - now
        else:
            if now >= self._next_misc:
                self._keepalive(now)
                self._next_misc = now + MISC_INTERVAL_S
                return True
            timeout = self._next_misc - now
            fd = sock.fileno()
            if self._registered not in (None, fd):
                poller.unregister(self._registered)
            poller.register(fd, select.POLLIN | (select.POLLOUT if self._out else 0))
            self._registered = fd
        for fd, events in poller.poll(max(0.0, timeout) * 1000.0):
            if fd == self._wake_r.fileno():
                self._run_commands()
            elif self._sock is not None and events & (select.POLLIN | select.POLLERR | select.POLLHUP):
                self._read()
        if self._out and self._sock is not None:
            self._write()
        return True

    def _connect(self) -> None:
        """One attempt: TCP (and TLS) connect and CONNECT sent; the CONNACK comes through the loop."""
        settings = self.settings
        sock = None
        try:
            # built first: a value the codec refuses (keep_alive beyond 16 bits) is a failed attempt, not a leak
            will = None
            if self.availability is not None:
                will = mqtt5.Will(self.availability[0], payload=self.availability[2], qos=mqtt5.QoS.AT_LEAST_ONCE,
                                  retain=True)
            connect = mqtt5.ConnectPacket(
                self.client_id, clean_start=False, keep_alive=settings.keepalive_s,
                session_expiry_interval=NEVER_EXPIRES, will=will, username=settings.username or None,
                password=settings.password.encode() if settings.password else None).write()
            sock = socket.create_connection((settings.host, settings.port), timeout=CONNECT_TIMEOUT_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if settings.tls or settings.ca_file:
                context = ssl.create_default_context(cafile=settings.ca_file or None)
                if settings.cert_file:
                    context.load_cert_chain(settings.cert_file, settings.key_file or None)
                sock = context.wrap_socket(sock, server_hostname=settings.host)
            sock.setblocking(False)
        except (OSError, ssl.SSLError, ValueError, OverflowError) as exc:
            if sock is not None:
                sock.close()
            message = f"{type(exc).__name__}: {exc}"
            if message != self.last_error:
                log.warning("event=mqtt-connect-failed host=%s port=%d error=%r reconnect=backoff",
                            settings.host, settings.port, message)
            self.last_error = message
            return
        self._sock = sock
        self._connected_at = time.monotonic()
        self._in.clear()
        self._out.clear()
        self._last_in = self._last_out = time.monotonic()
        self._ping_sent = False
        self._keepalive_s = settings.keepalive_s
        self._out += connect

    def _close(self, reason: str) -> None:
        """Drop the connection (the next turn reconnects after the back-off, unless stopping)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            sock.close()
        except OSError:
            pass
        if self.connected:
            self.disconnects += 1
            if not self._paused and not self._stopping:
                log.warning("event=mqtt-disconnected reason=%s reconnect=auto", reason)
        self.connected = self.subscribed = False
        self._unacked.clear()  # the broker redelivers these to the next connection, under new ids

    def _read(self) -> None:
        """Read what the socket has (a TLS socket can hold decrypted bytes that poll cannot see: read
        on while it has any) and handle every complete packet in it."""
        sock = self._sock
        assert sock is not None
        buf = self._in
        while True:
            try:
                data = sock.recv(READ_BYTES)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except (OSError, ssl.SSLError) as exc:
                self._close(f"{type(exc).__name__}: {exc}")
                return
            if not data:
                self._close("the broker closed the connection")
                return
            buf += data
            self._ping_sent = False
            pending = getattr(sock, "pending", None)
            if len(data) < READ_BYTES and not (pending is not None and pending()):
                break
        self._last_in = time.monotonic()
        if QUICKACK is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        if self._half_closed:
            # Stopping, our side shut: only the end of stream matters now. Never parse: on TLS,
            # SSLSocket.shutdown() drops the SSL object, and recv returns raw TLS records after it.
            buf.clear()
            return
        self._parse()

    def _parse(self) -> None:
        buf = self._in
        read, publish = mqtt5.read, mqtt5.PublishPacket
        unacked, ids = self._unacked, self._delivery_ids
        burst: list[Incoming] = []
        paused = self._paused
        now = time.time()
        pos, size = 0, len(buf)
        error = None
        with memoryview(buf) as view:
            while pos < size:
                try:
                    packet, n = read(view[pos:])
                except IndexError:  # "not enough bytes": the packet's tail comes with the next read
                    break
                except ValueError as exc:  # a malformed packet: nothing after it can be trusted
                    error = f"malformed packet: {exc}"
                    break
                pos += n
                if type(packet) is publish:
                    if paused:
                        continue  # not acknowledged: the broker redelivers after the restart
                    qos = 1 if packet.qos else 0
                    delivery = next(ids)
                    if qos:
                        unacked[delivery] = packet.packet_id
                    burst.append(Incoming(packet.topic, packet.payload, delivery, qos, now))
                    if len(burst) >= MAX_DRAIN:
                        self._hand_over(burst)
                        burst = []
                else:
                    self._control(packet)
        del buf[:pos]
        self._hand_over(burst)
        if error is not None:
            log.error("event=mqtt-protocol-error client_id=%s error=%s", self.client_id, error)
            self.last_error = error
            self._close(error)

    def _control(self, packet: Any) -> None:
        """Every packet but a PUBLISH."""
        kind = type(packet)
        if kind is mqtt5.PubAckPacket:
            if self._in_flight.pop(packet.packet_id, None) is not None:
                if packet.reason_code.value >= 0x80:
                    self._publish_refused(packet.reason_code.name)
                if self._waiting and self.connected:  # not after the DISCONNECT: those wait for nothing now
                    self._send_waiting()
        elif kind is mqtt5.ConnAckPacket:
            self._on_connack(packet)
        elif kind is mqtt5.SubAckPacket:
            failed = [rc for rc in packet.reason_codes if rc.value >= 0x80]
            if failed:
                self.last_error = f"subscription refused: {failed[0].name}"
                log.error("event=mqtt-subscribe-refused reason=%s topics=%s", failed[0].name, self.subscriptions)
            else:
                self.subscribed = True
        elif kind is mqtt5.DisconnectPacket:
            self.last_error = f"disconnected by the broker: {packet.reason_code.name}"
            self._close(packet.reason_code.name)
        elif kind is not mqtt5.PingRespPacket:
            log.warning("event=mqtt-unexpected-packet type=%s", kind.__name__)

    def _publish_refused(self, reason: str) -> None:
        """A PUBACK with a failure reason: the broker did not take the message (counted; logged once a reason)."""
        self.publish_errors += 1
        if reason not in self._refusals:
            self._refusals.add(reason)
            log.warning("event=publish-refused reason=%s client_id=%s", reason, self.client_id)

    def _on_connack(self, packet: Any) -> None:
        if self._stopping:  # came after stop(): nothing more goes out
            return
        if packet.reason_code.value != 0:
            self.last_error = f"connection refused: {packet.reason_code.name}"
            log.error("event=mqtt-connect-refused reason=%s host=%s", packet.reason_code.name, self.settings.host)
            self._close(self.last_error)
            return
        self.connected = True
        self.connects += 1
        self._delay = self.reconnect_min_s
        self._receive_max = packet.receive_max or 65535
        if packet.server_keep_alive is not None:  # MQTT 5 3.2.2.3.14: the broker's value replaces ours
            self._keepalive_s = packet.server_keep_alive
        log.info("event=mqtt-connected host=%s port=%d session_present=%s", self.settings.host,
                 self.settings.port, packet.session_present)
        if self.subscriptions:
            self._out += mqtt5.SubscribePacket(self._packet_id(), [
                mqtt5.TopicFilter(topic, max_qos=mqtt5.QoS.AT_LEAST_ONCE) for topic in self.subscriptions]).write()
        # What the last connection left unacknowledged goes first, flagged duplicate, in its order, as many
        # as the new Receive Maximum allows; the rest wait at the front of the queue, in order. _in_flight
        # is never emptied meanwhile: another thread reading in_flight must not see 0 mid-reconnect.
        if self.availability is not None:
            self._waiting.appendleft((self.availability[0], self.availability[1], 1, True))
        resend = list(self._in_flight.items())
        beyond = resend[self._receive_max:]
        self._waiting.extendleft((topic, payload, 1, retain) for _, (topic, payload, retain) in reversed(beyond))
        for packet_id, _ in beyond:
            del self._in_flight[packet_id]
        for packet_id, (topic, payload, retain) in resend[:self._receive_max]:
            self._out += mqtt5.PublishPacket(topic, payload, qos=mqtt5.QoS.AT_LEAST_ONCE, retain=retain,
                                             packet_id=packet_id, duplicate=True).write()
        self._send_waiting()

    def _send_waiting(self) -> None:
        """Send what waits, in order, up to the first QoS 1 message without a slot in the broker's window."""
        waiting, in_flight, out = self._waiting, self._in_flight, self._out
        packet, qos1 = mqtt5.PublishPacket, mqtt5.QoS.AT_LEAST_ONCE
        while waiting:
            topic, payload, qos, retain = waiting[0]
            if qos == 0:
                out += packet(topic, payload, retain=retain).write()
            elif len(in_flight) < self._receive_max:
                packet_id = self._packet_id()
                in_flight[packet_id] = (topic, payload, retain)
                out += packet(topic, payload, qos=qos1, retain=retain, packet_id=packet_id).write()
            else:
                break
            waiting.popleft()

    def _packet_id(self) -> int:
        ids, in_flight = self._packet_ids, self._in_flight
        while (packet_id := next(ids)) in in_flight:
            pass
        return packet_id

    def _keepalive(self, now: float) -> None:
        """A PINGREQ after a keepalive interval without traffic either way; a broker that then answers
        nothing for half an interval more is gone (paho's rule). No CONNACK in time: gone too.
        Not while stopping: ``connected`` is off then, yet no CONNACK is due, and closing would cut the
        read to the broker's end of stream short (``_stop_by`` bounds the stop instead)."""
        if self._stopping:
            return
        if not self.connected:
            if now - self._connected_at > CONNECT_TIMEOUT_S:
                self.last_error = "no CONNACK"
                self._close(self.last_error)
            return
        keepalive = self._keepalive_s
        if not keepalive:
            return
        if self._ping_sent:
            if now - self._last_in >= 1.5 * keepalive:
                self.last_error = "the broker stopped answering"
                self._close(self.last_error)
        elif now - self._last_out >= keepalive or now - self._last_in >= keepalive:
            self._out += mqtt5.PingReqPacket().write()
            self._ping_sent = True

    def _write(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            sent = sock.send(self._out)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except (OSError, ssl.SSLError) as exc:
            self._close(f"{type(exc).__name__}: {exc}")
            return
        del self._out[:sent]
        self._last_out = time.monotonic()

    def _run_commands(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        self._woken = False
        commands = self._commands
        while commands:
            commands.popleft()()

    def _shut_down(self) -> None:
        self._stopping = True
        if self._sock is None:
            return
        if self.connected:
            reason = mqtt5.DisconnectReasonCode.NORMAL_DISCONNECTION
            if self.availability is not None:
                self._publish_now([(self.availability[0], self.availability[2], 1, True)])
                # the "offline" above may wait behind the broker's Receive Maximum: the will (that same
                # "offline", retained) makes sure of it, and a normal DISCONNECT would suppress the will
                reason = mqtt5.DisconnectReasonCode.DISCONNECT_WITH_WILL_MESSAGE
            if self._waiting:  # never sent: the connection ends with the DISCONNECT
                self.publish_errors += len(self._waiting)
                log.warning("event=publish-dropped count=%d reason=stopping client_id=%s", len(self._waiting),
                            self.client_id)
            self._out += mqtt5.DisconnectPacket(reason_code=reason).write()
            # counted here: the socket closes once the DISCONNECT is written
            self.disconnects += 1
            self.connected = self.subscribed = False
        else:
            self._out.clear()

    def _ack_now(self, items: list[tuple[int, int]]) -> None:
        puback = mqtt5.PubAckPacket
        unacked = self._unacked
        out = self._out
        connected = self.connected and not self._stopping  # never after the DISCONNECT (nor before a CONNACK)
        for delivery, qos in items:
            if qos:
                packet_id = unacked.pop(delivery, None)
                if packet_id is None:
                    self.stale_acks += 1
                elif connected:
                    out += puback(packet_id).write()

    def _publish_now(self, messages: list[tuple[str, bytes, int, bool]]) -> None:
        check, waiting = mqtt5.PublishPacket, self._waiting
        for topic, payload, qos, retain in messages:
            if qos == 0 and not self.connected:
                self.dropped_qos0 += 1  # QoS 0 is at most once: nobody is listening now
                continue
            try:
                check(topic, b"")  # the topic's checks (no wildcard, not empty), before it is queued
                if len(waiting) >= MAX_QUEUED:
                    raise ValueError(f"{MAX_QUEUED} messages are waiting already")
            except ValueError as exc:
                self.publish_errors += 1
                log.warning("event=publish-failed topic=%s error=%r", topic[:120], exc)
                continue
            waiting.append((topic, payload, 1 if qos else 0, retain))
            self.published += 1
        if self.connected:
            self._send_waiting()

    # ------------------------------------------------------------------ hand-over (network thread)

    def _hand_over(self, items: list[Incoming]) -> None:
        if not items:
            return
        self.received += len(items)
        if self.on_receive is not None:
            self.on_receive(items)
            return
        self._inbox.extend(items)
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
