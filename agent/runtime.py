"""Wiring: sources -> parse -> hash -> presence -> publisher, with threads crossing in one place.

:class:`Pipeline` is the agent's logic with no threads at all: it takes a serial line, a replayed
reading, a GPIO edge or a clock tick and publishes what follows. ``replay`` and the benchmark
drive it directly. :class:`AgentRuntime` adds the threads: serial readers and gpiozero call
:meth:`AgentRuntime.submit` (a ``queue.SimpleQueue.put``, the only place a thread hands data over),
and one loop thread drains the queue into the pipeline, ticks presence and sends health.

Serial lines wait in that queue at most :data:`INBOX_LINES` deep: past it a reader thread waits for
the loop to catch up (back-pressure), so the sniffer's lines queue in the kernel's serial buffer
instead of in the agent's memory. A real sniffer sends a few hundred lines a second, far below the
loop's tens of thousands, so it only happens when the loop stalls or lines arrive in a flood
(bench_agent writes 100,000 lines at once; with the queue unbounded the backlog took the agent's
peak RSS from ~45 to ~59 MB).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import IO, Any, Protocol

from agent import contract
from agent.config import DeviceConfig
from agent.device_kinds import DeviceKinds
from agent.fingerprint import FingerprintHasher
from agent.health import HealthMonitor
from agent.linking import MacLinker
from agent.presence import PresenceTracker, PresenceUpdate, Sighting
from agent.privacy import DeviceHasher, is_randomized
from agent.sdnotify import notify, watchdog_interval_s
from agent.sources.gpio import DoorEvent, Edge, GpioInputs, GpioLogic, MotionEvent, SensorEvent
from agent.sources.parser import Probe, parse_line
from agent.sources.serial_reader import SerialLineReader

log = logging.getLogger(__name__)

TICK_S = 1.0
# Serial lines queued for the loop thread before readers wait: 0.1 s of the loop's work at full speed,
# ten seconds of a busy sniffer, ~0.5 MB.
INBOX_LINES = 2_000
ROOM_WAIT_S = 0.5  # a waiting reader re-checks at least this often (and gives up once the loop has ended)


class Sink(Protocol):
    """Where messages go: the :class:`agent.publisher.Publisher`, or a counter for dry runs."""

    def new_id(self) -> tuple[str, int]: ...

    def publish(self, message: contract.AgentMessage, seq: int) -> None: ...


class CountingSink:
    """A sink that publishes nothing: counts messages by kind (``replay --dry-run``, benchmarks)."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.seq = 0
        self.counts: Counter[str] = Counter()
        self.entered_devices: set[str] = set()
        self.last: contract.AgentMessage | None = None

    def new_id(self) -> tuple[str, int]:
        self.seq += 1
        return f"{self.agent_id}:{self.seq}", self.seq

    def publish(self, message: contract.AgentMessage, seq: int) -> None:
        contract.encode_agent(message)  # encoding is part of the work being measured
        self.counts[message.kind] += 1
        if message.kind == "enter":
            self.entered_devices.add(message.device)  # type: ignore[union-attr]
        self.last = message


class Pipeline:
    """The agent's logic, single-threaded: lines, readings, edges and ticks in; messages out."""

    def __init__(self, device: DeviceConfig, sink: Sink, *, recorder: IO[str] | None = None) -> None:
        store = device.store
        self.agent_id = device.agent_id
        self.sink = sink
        self.recorder = recorder
        self.hasher = DeviceHasher(store.secret, rotate_daily=store.rotate_daily, timezone=store.timezone)
        self.fingerprints = FingerprintHasher(store.secret)
        self.linker = MacLinker()
        self.kinds = DeviceKinds()
        self.presence = PresenceTracker(device)
        self.gpio = GpioLogic(device)
        self.lines = 0
        self.readings = 0
        self.rejected: Counter[str] = Counter()
        self.published: Counter[str] = Counter()

    # -- inputs

    def line(self, sniffer: str, raw: bytes, ts: float) -> None:
        """One raw serial line, timestamped on receipt."""
        self.lines += 1
        result = parse_line(raw)
        if type(result) is str:
            if result:
                self.rejected[result] += 1
                log.debug("event=line-rejected sniffer=%s kind=%s bytes=%d", sniffer, result, len(raw))
            return
        self.probe(sniffer, result, ts)  # type: ignore[arg-type]

    def probe(self, sniffer: str, probe: Probe, ts: float) -> Sighting:
        """A parsed probe: the MAC and the fingerprint are hashed here and go no further; the MAC is
        linked into its pseudo-device (agent.linking) and the device's kind learned (agent.device_kinds)."""
        mac, rssi_dbm, _, seq, material = probe  # once: this runs per line
        mac_id = self.hasher.device_id(mac, ts)
        randomized = is_randomized(mac)
        rssi = float(rssi_dbm)
        fingerprint = None if material is None else self.fingerprints.hash(material)
        device, macs = self.linker.link(ts, mac_id, randomized=randomized, seq=seq, fingerprint=fingerprint,
                                        rssi_dbm=rssi)
        mac_ids = self.linker.mac_ids(mac_id) if macs > 1 else ()
        sighting = Sighting(ts, sniffer, device, rssi, randomized, self.kinds.observe(ts, device, sniffer, rssi), macs,
                            mac_ids)
        self.sighting(sighting)
        return sighting

    def sighting(self, s: Sighting) -> None:
        self.readings += 1
        if self.recorder is not None:
            self.recorder.write(json.dumps({"ts": round(s.ts, 3), "sniffer": s.sniffer, "device": s.device,
                                            "randomized": s.randomized, "rssi": s.rssi_dbm}) + "\n")
        update = self.presence.sighting(s)
        if update is not None:
            self._presence(update)

    def edge(self, edge: Edge) -> None:
        event = self.gpio.edge(edge)
        if event is not None:
            self._sensor(event)

    def link(self, device: str, customer_id: str, ts: float) -> None:
        msg_id, seq = self.sink.new_id()
        self._send(contract.Link(msg_id, self.agent_id, ts, device, customer_id), seq)

    def tick(self, now: float) -> None:
        for update in self.presence.tick(now):
            self._presence(update)
        for event in self.gpio.tick(now):
            self._sensor(event)

    def health(self, monitor: HealthMonitor, now: float, *, spool_depth: int = 0, spool_dropped: int = 0,
               serial_reconnects: int = 0) -> None:
        msg_id, seq = self.sink.new_id()
        self._send(monitor.report(msg_id, now, readings=self.readings, rejected=self.rejected,
                                  spool_depth=spool_depth, spool_dropped=spool_dropped,
                                  serial_reconnects=serial_reconnects), seq)

    # -- outputs

    def _presence(self, u: PresenceUpdate) -> None:
        msg_id, seq = self.sink.new_id()
        kind, ts, device, x, y, accuracy_m, rssi_dbm, distance_m, randomized, ranges, device_kind, macs, mac_ids = u
        log.debug("event=presence kind=%s device=%s x=%.0f y=%.0f distance_m=%.1f msg_id=%s",
                  kind, device, x, y, distance_m, msg_id)
        self._send(contract.Presence(kind, msg_id, self.agent_id, ts, device, x, y, accuracy_m, rssi_dbm, distance_m,
                                     randomized, ranges, device_kind, macs, mac_ids), seq)

    def _sensor(self, event: SensorEvent) -> None:
        msg_id, seq = self.sink.new_id()
        if isinstance(event, MotionEvent):
            self._send(contract.Motion(msg_id, self.agent_id, event.ts, event.sensor, event.zone, event.active), seq)
        elif isinstance(event, DoorEvent):
            self._send(contract.Door(msg_id, self.agent_id, event.ts, event.sensor, event.direction), seq)

    def _send(self, message: contract.AgentMessage, seq: int) -> None:
        self.published[message.kind] += 1
        self.sink.publish(message, seq)


class AgentRuntime:
    """Threads around a :class:`Pipeline`: serial readers, GPIO callbacks, one loop draining a queue."""

    def __init__(self, device: DeviceConfig, sink: Sink, *, pin_factory: Any = None,
                 serial_ports: dict[str, str] | None = None, recorder: IO[str] | None = None,
                 spool_stats: Callable[[], tuple[int, int]] | None = None) -> None:
        self.device = device
        self.pipeline = Pipeline(device, sink, recorder=recorder)
        self.inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.readers = [
            SerialLineReader((serial_ports or {}).get(s.id, s.port), baud=s.baud, name=s.id,
                             on_line=self._line_handler(s.id))
            for s in device.sniffers
        ]
        self._pin_factory = pin_factory
        self._gpio: GpioInputs | None = None
        self._spool_stats = spool_stats or (lambda: (0, 0))
        self._started = time.time()
        self._stop = threading.Event()
        self._room = threading.Event()  # set while the inbox has room for serial lines
        self._room.set()
        self._loop_ended = False  # no loop drains the inbox: readers must not wait for room

    def _line_handler(self, sniffer: str) -> Callable[[bytes, float], None]:
        put, qsize = self.inbox.put, self.inbox.qsize

        def on_line(raw: bytes, ts: float) -> None:
            put(("line", sniffer, raw, ts))
            if qsize() >= INBOX_LINES:
                self._wait_for_room()
        return on_line

    def _wait_for_room(self) -> None:
        """On a reader thread: wait until the loop has worked the inbox down (see the module docstring).

        The loop sets ``_room`` once the inbox is at half the limit; clearing it and then checking
        the depth again means a wake-up that came in between is not lost."""
        qsize, room = self.inbox.qsize, self._room
        while qsize() >= INBOX_LINES and not self._loop_ended:
            room.clear()
            if qsize() < INBOX_LINES:
                return
            room.wait(ROOM_WAIT_S)

    def submit(self, item: tuple[Any, ...]) -> None:
        """The one place other threads hand work to the agent (serial, GPIO, simulator)."""
        self.inbox.put(item)

    def open(self) -> None:
        """Open serial ports and GPIO now, so a missing device fails start-up with a clear error."""
        try:
            for reader in self.readers:
                reader.open()
            self._gpio = GpioInputs(self.device, lambda edge: self.inbox.put(("edge", edge)),
                                    pin_factory=self._pin_factory)
        except BaseException:
            self.close()
            raise

    def run(self, stop: threading.Event | None = None) -> None:
        """Process until ``stop`` is set (or :meth:`stop` is called)."""
        stop = stop or self._stop
        self._loop_ended = False
        for reader in self.readers:
            reader.start()
        notify("READY=1")
        log.info("event=agent-started agent=%s sniffers=%d pirs=%d door=%s", self.device.agent_id,
                 len(self.readers), len(self.device.pirs), bool(self.device.door))
        try:
            self._loop(stop)
        finally:
            self._loop_ended = True  # readers stop waiting for room nobody will make
            self._room.set()
        notify("STOPPING=1")

    def _loop(self, stop: threading.Event) -> None:
        pipeline = self.pipeline
        get, qsize, room = self.inbox.get, self.inbox.qsize, self._room
        next_tick = time.time() + TICK_S
        next_health = time.time() + self.device.health_interval_s
        watchdog_s = watchdog_interval_s()
        next_watchdog = time.time()
        monitor = HealthMonitor(self.device.agent_id, clock=self._started)
        while not (stop.is_set() or self._stop.is_set()):
            try:
                item = get(timeout=0.2)
            except queue.Empty:
                item = None
            if not room.is_set() and qsize() <= INBOX_LINES // 2:
                room.set()
            if item is not None:
                self._dispatch(item)
            now = time.time()
            if now >= next_tick:
                pipeline.tick(now)
                next_tick = now + TICK_S
            if now >= next_health:
                depth, dropped = self._spool_stats()
                pipeline.health(monitor, now, spool_depth=depth, spool_dropped=dropped,
                                serial_reconnects=sum(r.reconnects for r in self.readers))
                next_health = now + self.device.health_interval_s
            if watchdog_s is not None and now >= next_watchdog:
                notify("WATCHDOG=1")
                next_watchdog = now + watchdog_s

    def _dispatch(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "line":
            self.pipeline.line(item[1], item[2], item[3])
        elif kind == "edge":
            self.pipeline.edge(item[1])
        elif kind == "link":
            self.pipeline.link(item[1], item[2], item[3])
        elif kind == "link_mac":  # a loyalty app (or the simulator) names a phone: hash it first
            self.pipeline.link(self.pipeline.hasher.device_id(item[1], item[3]), item[2], item[3])
        elif kind == "call":  # a function to run on this thread (the simulator's scenario hand-over)
            item[1]()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        for reader in self.readers:
            reader.stop()
        if self._gpio is not None:
            self._gpio.close()
            self._gpio = None
