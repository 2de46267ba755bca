"""The aggregator's MQTT connection: paho's public API driven by a loop of our own, manual acks.

Why it is built this way:

* One network thread per link runs paho's *external loop* API: ``poll`` on ``client.socket()``
  (and a wake-up socket of ours), ``loop_read`` while the socket stays readable, ``loop_write``
  while ``want_write()``, ``loop_misc`` every half second for keepalive. paho's ``loop_read``
  handles one PUBLISH per call, so ``loop_forever``/``loop_start`` go back to ``select`` after
  every message (half the speed); reading on while ``poll(0)`` says readable is what keeps up.
  A TLS socket can hold decrypted bytes that ``poll`` cannot see (``SSLSocket.pending()``): we
  read on while it has any, or the tail of a burst would wait for the next keepalive.
* Every paho call is made from that thread: ``ack`` and ``publish`` from other threads queue a
  command and wake it, so paho's state is never shared and the asyncio loop never blocks.
  Received messages go out a read burst at a time, to ``on_receive`` (in the thread) or through
  a deque and one ``loop.call_soon_threadsafe`` per burst to ``on_batch`` on the event loop.
* QoS 1, a fixed client id and a persistent session (``clean_session=False``): while the
  aggregator is down, the broker keeps what agents publish, and hands it over on reconnect.
  Reconnection, with doubling back-off, is this thread's too (``client.reconnect()``).
* Manual acknowledgement (``manual_ack_set(True)``, ``client.ack(mid, qos)``): a message is
  acknowledged only after the SQLite transaction holding it has committed, so a kill -9 loses
  nothing; the broker redelivers, and the message id makes redelivery harmless.
* Each QoS 1 delivery gets a delivery id of this link's (:attr:`Incoming.mid`), and ``ack`` takes
  those, not MQTT packet ids: the broker reuses a packet id once it is acknowledged, so an
  acknowledgement sent twice (a writer killed between its commit's acknowledgements and telling
  the aggregator resends the batch) would otherwise acknowledge a newer message before it is
  stored. A delivery id is acknowledged once; a second time, or one from an earlier connection
  (the broker redelivers those under new ids), is counted in ``stale_acks`` and dropped.
* MQTT 3.1.1 on this connection, although agents speak MQTT 5: the broker translates (it drops
  the v5 properties, which the contract does not use), and paho handles a v3 PUBLISH in about
  60-70 % of the CPU a v5 one costs (this thread: 29-33 against 45-47 µs a message draining a
  20,000-message backlog, re-checked 2026-12-07), the difference between keeping up with the
  backlog after an outage and not. See docs/MQTT.md; where the rest goes: docs/PERFORMANCE.md,
  "The MQTT process, per message".
* paho sends every packet with a ``send`` of its own. The socket is ``TCP_NODELAY`` (else a 4-byte
  PUBACK waits out the broker's delayed ACK, 40 ms, and the broker's in-flight window for us stalls:
  latency p99 25-61 ms against 14-18 without), and corked around each ``loop_write`` so a batch of
  acks still leaves in full segments (27 against 43 µs a message read and acked, NODELAY alone).
* ``publish`` is thread-safe and non-blocking: messages wait in one ordered outbox until the
  event loop's current callback ends (a slice of ingest), then go to paho in that order.
* ``stop`` waits until the broker has *processed* the last acknowledgements, not only until they
  are written: before the DISCONNECT it unsubscribes from a filter it never subscribed to
  (:data:`STOP_BARRIER`; the session keeps its subscriptions) and waits for the UNSUBACK. A broker
  handles one connection's packets in order, so the reply comes after every earlier PUBACK took
  effect. Without it, a link of the same client id connecting at once (a restarted aggregator or
  MQTT process) took the session over while mosquitto still had PUBACKs of the old connection
  unread, and dropped them ("already connected, closing old connection"): those messages were
  redelivered (6 of 20 runs of the backlog test under two busy loops, 191-1,312 of 3,000 messages).
"""

from __future__ import annotations

import asyncio
import collections
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

import paho.mqtt.client as mqtt

from agent.config import MqttSettings

log = logging.getLogger(__name__)

MAX_DRAIN = 2000  # messages handed to the loop per callback, so HTTP stays responsive under load
READS_PER_WAKE = 2000  # packets read before acks, publishes and keepalive get their turn
MISC_INTERVAL_S = 0.5  # loop_misc: keepalive pings and dead-connection detection
STOP_TIMEOUT_S = 5.0  # how long stop() waits for the barrier's reply and the DISCONNECT to go out
# A topic filter the link never subscribes to: unsubscribing from it changes nothing in the session, and
# the broker's UNSUBACK (it answers one even when nothing matched) is stop()'s proof that the acks took effect.
STOP_BARRIER = "floorwalker/link-stop-barrier"
TCP_CORK = getattr(socket, "TCP_CORK", -1)  # Linux only; -1 makes setsockopt fail elsewhere


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
    received: float  # time.time() when paho handed it over
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

    With ``on_receive`` they go to that instead, from the network thread, a read burst at a time
    (the MQTT process passes them on to the aggregator without a hand-over to its own loop)."""

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
        self._burst: list[Incoming] = []  # what on_message collected during the current read burst
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
        self._delay = self.reconnect_min_s  # the next reconnect's back-off
        self._retry_at = 0.0  # monotonic time of the next connection attempt
        self._next_misc = 0.0  # ... of the next loop_misc
        self._registered: int | None = None  # the broker socket's fd in the network thread's poll
        self._stop_by: float | None = None
        self._barrier: int | None = None  # the packet id of stop()'s UNSUBSCRIBE, until its UNSUBACK
        self._thread: threading.Thread | None = None
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        settings = self.settings
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False,
                             protocol=mqtt.MQTTv311)
        client.manual_ack_set(True)
        # No in-flight limit on what we publish (the customer tier's QoS 1 messages): with one, paho
        # scans every unacknowledged message on each PUBACK for one queued behind the limit (~40 µs a
        # PUBACK under load). max_queued still bounds what it holds while disconnected.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(100_000)
        if settings.username:
            client.username_pw_set(settings.username, settings.password or None)
        if settings.tls or settings.ca_file:
            context = ssl.create_default_context(cafile=settings.ca_file or None)
            if settings.cert_file:
                context.load_cert_chain(settings.cert_file, settings.key_file or None)
            client.tls_set_context(context)
        if self.availability is not None:
            client.will_set(self.availability[0], self.availability[2], qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        # paho's external-loop contract: with this set, paho queues packets and leaves the writing
        # to us (we look at want_write() after every step) instead of writing from inside publish()
        client.on_socket_register_write = _nothing
        client.on_socket_open = _no_delay
        return client

    # ------------------------------------------------------------------ lifecycle (event loop)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; the network thread keeps reconnecting with back-off until ``stop``."""
        self._loop = loop
        if self.availability is not None:  # set after construction (Home Assistant discovery does)
            self.client.will_set(self.availability[0], self.availability[2], qos=1, retain=True)
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s)
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.client_id}", daemon=True)
        self._thread.start()
        log.info("event=mqtt-connecting host=%s port=%d client_id=%s tls=%s", self.settings.host,
                 self.settings.port, self.client_id, bool(self.settings.tls or self.settings.ca_file))

    def stop(self) -> None:
        """Send what is queued, disconnect cleanly; unacknowledged messages stay with the broker.

        Returns once the broker has processed every acknowledgement made before the call (the
        UNSUBACK of :data:`STOP_BARRIER`), or after ``STOP_TIMEOUT_S`` if it does not answer."""
        self._paused = True
        self.flush()
        self._command(self._shut_down)
        thread = self._thread
        if thread is not None:
            thread.join(STOP_TIMEOUT_S + 1.0)
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
        sock = self.client.socket()
        if sock is not None:
            sock.close()  # gave up waiting for the broker to take the last bytes

    def _step(self, poller: Any) -> bool:
        """One turn of the network loop: connect, or wait for the socket, read, run commands, write.
        False once stopped."""
        client = self.client
        sock = client.socket()
        now = time.monotonic()
        if self._stopping:
            self._stop_by = self._stop_by or now + STOP_TIMEOUT_S
            if now > self._stop_by and sock is not None:
                log.warning("event=mqtt-stop-timeout client_id=%s barrier_answered=%s", self.client_id,
                            self._barrier is None)
            if sock is None or now > self._stop_by or (self._barrier is None and not client.want_write()):
                return False
        if sock is None:
            if self._registered is not None:
                poller.unregister(self._registered)
                self._registered = None
            self.connected = self.subscribed = False
            if now >= self._retry_at and not self._stopping:
                self._connect()
                self._retry_at = now + self._delay  # the CONNACK resets the back-off (_on_connect)
                self._delay = min(self._delay * 2, self.reconnect_max_s)
                return True
            timeout = self._retry_at - now
        else:
            fd = sock.fileno()
            if self._registered not in (None, fd):
                poller.unregister(self._registered)
            poller.register(fd, select.POLLIN | (select.POLLOUT if client.want_write() else 0))
            self._registered = fd
            if now >= self._next_misc:
                client.loop_misc()  # keepalive; closes a connection the broker stopped answering on
                self._next_misc = now + MISC_INTERVAL_S
                return True
            timeout = self._next_misc - now
        for fd, events in poller.poll(max(0.0, timeout) * 1000.0):
            if fd == self._wake_r.fileno():
                self._run_commands()
            elif events & (select.POLLIN | select.POLLERR | select.POLLHUP):
                self._read(sock)
        if client.want_write() and client.socket() is not None:
            self._write()
        return True

    def _write(self) -> None:
        """``loop_write`` with the socket corked: paho sends each packet by itself (no Nagle, see
        :func:`_no_delay`), so a batch of acks would be a TCP segment each; corked it leaves in full
        segments, and uncorking sends the rest at once."""
        sock = self.client.socket()
        corked = _cork(sock, True)
        try:
            self.client.loop_write()
        finally:
            if corked and self.client.socket() is sock:
                _cork(sock, False)

    def _connect(self) -> None:
        """One attempt: TCP (and TLS) connect and CONNECT sent; the CONNACK comes through the loop."""
        try:
            self.client.reconnect()
        except (OSError, ssl.SSLError, ValueError) as exc:
            message = f"{type(exc).__name__}: {exc}"
            if message != self.last_error:
                log.warning("event=mqtt-connect-failed host=%s port=%d error=%r reconnect=backoff",
                            self.settings.host, self.settings.port, message)
            self.last_error = message

    def _read(self, sock: Any) -> None:
        """paho reads one packet per ``loop_read``: go on while the socket (or TLS) still has bytes."""
        client = self.client
        ready = select.poll()
        ready.register(sock, select.POLLIN)
        pending = getattr(sock, "pending", None)  # ssl.SSLSocket: decrypted bytes poll cannot see
        burst = len(self._burst)
        for _ in range(READS_PER_WAKE):
            if client.loop_read() != mqtt.MQTT_ERR_SUCCESS or client.socket() is not sock:
                break
            if len(self._burst) > burst:  # a message: most likely more follow (saves a poll per message)
                burst = len(self._burst)
                if burst >= MAX_DRAIN:
                    self._hand_over()
                    burst = 0
                continue
            # another packet (PUBACK, PINGRESP), or nothing more to read (paho does not say which)
            if not (pending is not None and pending()) and not ready.poll(0):
                break
        self._hand_over()

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
        """Runs after every ack() made before stop() (commands run in order): the barrier, then the
        DISCONNECT from :meth:`_on_unsubscribe`. Reading goes on meanwhile (the link is paused: what
        arrives now is not acknowledged, so the broker redelivers it)."""
        self._stopping = True
        client = self.client
        if client.socket() is None:
            return
        if self.connected:
            if self.availability is not None:
                client.publish(self.availability[0], self.availability[2], qos=1, retain=True)
            rc, mid = client.unsubscribe(STOP_BARRIER)
            if rc == mqtt.MQTT_ERR_SUCCESS:
                self._barrier = mid
                return
        client.disconnect()  # not connected yet (no CONNACK): nothing of ours to settle

    def _ack_now(self, items: list[tuple[int, int]]) -> None:
        ack = self.client.ack
        unacked = self._unacked
        for delivery, qos in items:
            if qos:
                mid = unacked.pop(delivery, None)
                if mid is None:
                    self.stale_acks += 1
                else:
                    ack(mid, qos)

    def _publish_now(self, messages: list[tuple[str, bytes, int, bool]]) -> None:
        publish = self.client.publish
        for topic, payload, qos, retain in messages:
            if qos == 0 and not self.connected:
                self.dropped_qos0 += 1  # QoS 0 is at most once: nobody is listening now
                continue
            try:
                rc = publish(topic, payload, qos=qos, retain=retain).rc
            except (ValueError, OSError) as exc:  # a wildcard or empty topic, a payload too large
                self.publish_errors += 1
                log.warning("event=publish-failed topic=%s error=%r", topic[:120], exc)
                continue
            if rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # QoS 1 waits in paho for the reconnect
                self.published += 1
            else:
                self.publish_errors += 1

    # ------------------------------------------------------------------ paho's callbacks (network thread)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any = None) -> None:
        if reason_code.is_failure:
            self.last_error = str(reason_code)
            log.error("event=mqtt-connect-refused reason=%s host=%s", reason_code, self.settings.host)
            return
        self.connected = True
        self.connects += 1
        self._unacked.clear()  # the broker redelivers what the last connection left unacknowledged, under new ids
        self._delay = self.reconnect_min_s
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

    def _on_unsubscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any,
                        properties: Any = None) -> None:
        if mid == self._barrier:  # every acknowledgement before stop() has taken effect
            self._barrier = None
            client.disconnect()  # paho closes the socket once the DISCONNECT is written

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any = None) -> None:
        if self.connected:
            self.disconnects += 1
        self.connected = False
        self.subscribed = False
        if not self._paused and not self._stopping:
            log.warning("event=mqtt-disconnected reason=%s reconnect=auto", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._paused:
            return  # not acknowledged: the broker redelivers after the restart
        delivery = msg.mid
        if msg.qos:
            delivery = next(self._delivery_ids)
            self._unacked[delivery] = msg.mid
        self._burst.append(Incoming(msg.topic, msg.payload, delivery, msg.qos, time.time()))

    def _hand_over(self) -> None:
        items = self._burst
        if not items:
            return
        self._burst = []
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


def _nothing(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """paho's on_socket_register_write: the network thread checks ``want_write()`` itself."""


def _no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """paho's on_socket_open: no Nagle delay. paho sends each packet (a 4-byte PUBACK) by itself;
    with Nagle a small one waits for the broker's delayed ACK (40 ms on Linux), the broker's
    in-flight window for us fills, and the agent tier's messages wait with it."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not TCP (a Unix socket, a websocket wrapper): nothing to do
        pass


def _cork(sock: Any, on: bool) -> bool:
    """Set TCP_CORK (Linux); False where there is none."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_CORK, 1 if on else 0)
        return True
    except (OSError, AttributeError):
        return False
