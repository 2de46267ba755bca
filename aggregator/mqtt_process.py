"""The agent-tier MQTT connection in a child process: reading, parsing and decoding beside ingest.

Why a process: the aggregator's ingest (fusion, visits, the customer tier) is one thread of
Python, and everything else in its process competes with it for the same interpreter lock. The
connection's own work (the network thread's reads and writes, building message tuples, JSON
decoding and validating every payload, publishing the customer tier, PUBACKs) was about a third
of the aggregator's CPU per message; here it runs on the other core. The SQLite writer
(:mod:`aggregator.sqlite_writer`) is split off the same way; both run as a
:class:`~aggregator.child_process.Worker`.

Parent -> child, on the child's stdin: ``("config", {...})`` first, then ``("pub", [(topic,
payload, qos, retain), ...])`` in publishing order; end-of-file means publish what is queued,
disconnect and exit. Child -> parent, on its stdout: ``("acks_ready", path)`` once it listens
for acknowledgements, ``("msgs", [(topic, payload, mid, qos, received, decoded), ...])`` a drained
slice at a time, ``("state", {...})`` when the connection's state or counters change. SQLite
writer -> child, on the Unix socket at ``path`` (:mod:`aggregator.sqlite_writer` connects):
``("ack", [(mid, qos), ...])`` after each commit. So one message crosses three times, always
forward: here -> parent (ingest) -> writer -> here.

What is not lost:

* The child runs two plain :class:`~aggregator.mqtt_link.MqttLink` connections: one reads the
  agent tier (persistent session, manual acks, the availability will), one publishes what the
  aggregator sends (client id + ``-out``), so that the broker's acknowledgements of our publishes
  do not queue behind a backlog it is sending us. Messages are acknowledged only when the writer
  says their batch is committed, so a child that dies loses nothing: the parent starts another,
  and the broker redelivers to it whatever was not acknowledged (the message ids make a repeat
  harmless). It listens for the writer before it connects, so no acknowledgement of its own
  messages can find it not listening.
* The child has its own session (Ctrl-C and systemd's stop signal go to the aggregator, which stops
  it in order) and exits when its stdin closes, so a parent killed with -9 leaves no orphan.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, BinaryIO

from agent.config import MqttSettings
from agent.contract import Presence, Rejection, decode_agent, presence_fields
from aggregator.child_process import PIPE_BYTES, Worker, read_frame, set_up_child, write_frame
from aggregator.mqtt_link import Incoming, LinkBase, MqttLink

log = logging.getLogger(__name__)

STATE_INTERVAL_S = 0.2  # how often the child looks for a changed state to report
RESTART_DELAY_S = 0.5
PUBLISHER_SUFFIX = "-out"  # the publishing connection's client id: the aggregator's, and this
ACKS_DRAIN_S = 2.0  # at exit, how long the child waits for the writer's last acknowledgements


# ----------------------------------------------------------------------------- decoded messages on the pipe

def plain_decoded(topic: str, payload: bytes) -> tuple[Any, ...] | None:
    """The decoded message as plain values (marshal takes no named tuples), or None for kinds
    the parent decodes itself (status, door, motion, link, health: a few a minute per agent)."""
    fields = presence_fields(topic, payload)  # nearly every report: one msgspec decode, no objects built twice
    if fields is not None:
        return ("P", fields)
    msg = decode_agent(topic, payload)
    if type(msg) is Presence:
        return ("P", (*msg[:11], tuple(map(tuple, msg.ranges)), *msg[12:]))  # ranges: Range's fields in order
    if type(msg) is Rejection:
        return ("R", msg.reason, msg.detail)
    return None


def revive(plain: tuple[Any, ...] | None) -> Presence | Rejection | None:
    """:func:`plain_decoded` undone, in the parent (a tuple rebuilt, nothing validated twice).

    The ranges stay plain tuples of :class:`~agent.contract.Range`'s fields in Range's order: the
    aggregator only unpacks them (``Fusion.add``), and rebuilding a named tuple per range was a
    third of this function's time on the aggregator's busy thread."""
    if plain is None:
        return None
    if plain[0] == "P":
        # tuple.__new__ is what _make does, without its length check: the child built these
        return _new(Presence, plain[1])
    return Rejection(plain[1], plain[2])


_new = tuple.__new__


# ----------------------------------------------------------------------------- the parent's side

class ProcessMqttLink(LinkBase):
    """:class:`~aggregator.mqtt_link.MqttLink`'s interface, with the connection in a child process.

    Messages reach ``on_batch`` on the event loop as :class:`Incoming` items whose ``decoded``
    holds the child's decoding. ``on_acks_to`` learns where the current child takes
    acknowledgements (None while there is none): the aggregator tells its writer. ``publish`` may be
    called from any thread; the rest on the loop. The state and counters are the child's link's,
    as its last ``state`` frame gave them, kept counting across children."""

    def __init__(self, settings: MqttSettings, client_id: str, subscriptions: list[str], *,
                 on_batch: Callable[[list[Incoming]], None] | None = None,
                 on_acks_to: Callable[[str | None], None] | None = None,
                 reconnect_min_s: float = 1.0, reconnect_max_s: float = 30.0) -> None:
        super().__init__(settings, client_id, subscriptions, on_batch)
        self.on_acks_to = on_acks_to
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._base: dict[str, int] = {}  # counters of children that died, so totals keep counting
        self._dir: str | None = None  # holds the children's acknowledgement sockets
        self._worker = Worker("aggregator.mqtt_process", on_frame=self._frame, on_start=self._configure,
                              on_exit=self._died, restart_delay_s=RESTART_DELAY_S,
                              pipe_bytes=PIPE_BYTES)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._dir = tempfile.mkdtemp(prefix="floorwalker-mqtt-")
        await self._worker.start()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Publish what is queued, disconnect cleanly and end the child."""
        self._paused = True
        self.flush()
        await self._worker.stop(timeout_s)
        self.connected = self.subscribed = False
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def pid(self) -> int | None:
        return self._worker.pid

    @property
    def restarts(self) -> int:
        return self._worker.restarts

    @property
    def inbox_depth(self) -> int:
        """Messages received and not yet handed over: none wait here (the loop reads the pipe)."""
        return 0

    def _configure(self, worker: Worker) -> None:
        assert self._dir is not None
        config = {"mqtt": asdict(self.settings), "client_id": self.client_id,
                  "subscriptions": list(self.subscriptions), "reconnect_min_s": self.reconnect_min_s,
                  "reconnect_max_s": self.reconnect_max_s, "availability": self.availability,
                  "acks_socket": os.path.join(self._dir, f"acks-{worker.restarts}.sock")}
        worker.send(("config", config))

    def _died(self, code: int | None) -> None:
        self.connected = self.subscribed = False
        # a new child counts from 0: keep the totals
        self._base = {name: value for name, value in self.state().items() if type(value) is int}
        if self.on_acks_to is not None:
            self.on_acks_to(None)

    def _frame(self, frame: tuple[Any, ...]) -> None:
        kind = frame[0]
        if kind == "msgs":
            new = tuple.__new__
            items = [new(Incoming, (t, p, mid, qos, received, revive(decoded)))
                     for t, p, mid, qos, received, decoded in frame[1]]
            if items and self.on_batch is not None and not self._paused:
                self.on_batch(items)
        elif kind == "state":
            base = self._base
            for name, value in frame[1].items():
                setattr(self, name, value + base[name] if name in base else value)
        elif kind == "acks_ready" and self.on_acks_to is not None:
            self.on_acks_to(frame[1])

    def flush(self) -> None:
        self._flush_scheduled = False
        outbox = self._outbox
        if not outbox:
            return
        messages = [outbox.popleft() for _ in range(len(outbox))]
        if not self._worker.send(("pub", messages)):
            self.publish_errors += len(messages)


# ----------------------------------------------------------------------------- the child's side

async def _serve(config: dict[str, Any], inp: BinaryIO, out: BinaryIO) -> None:
    loop = asyncio.get_running_loop()
    out_lock = threading.Lock()

    def send(frame: tuple[Any, ...]) -> None:
        with out_lock:
            write_frame(out, frame)

    # Messages go to the parent straight from the link's network thread, decoded, a read burst at a
    # time: no hand-over to this loop (latency), and a parent that falls behind blocks this write, so
    # the link stops reading and TCP holds the broker back instead of a queue growing here.
    def on_receive(items: list[Incoming]) -> None:
        # Runs in the link's network thread: a bug here must not cost the connection.
        rows = []
        for topic, payload, mid, qos, received, _ in items:
            try:
                decoded = plain_decoded(topic, payload)
            except Exception:  # a bug, not bad input (that is a Rejection): the aggregator decodes it
                log.exception("event=decode-error topic=%s", topic[:200])
                decoded = None
            rows.append((topic, payload, mid, qos, received, decoded))
        try:
            send(("msgs", rows))
        except (BrokenPipeError, OSError, ValueError):
            pass  # the aggregator is gone: unacknowledged, redelivered to the next one; stdin's end stops us

    link = MqttLink(MqttSettings(**config["mqtt"]), config["client_id"], config["subscriptions"],
                    on_receive=on_receive, reconnect_min_s=config["reconnect_min_s"],
                    reconnect_max_s=config["reconnect_max_s"], availability=config.get("availability"))
    # What the aggregator publishes goes out on a connection of its own. On the one that reads, the broker's
    # acknowledgement of each QoS 1 publish queues behind everything it is sending us, and mosquitto sends
    # a stored backlog whole: draining 400,000 messages, 41,000-94,000 customer-tier publishes were still
    # waiting (past MAX_QUEUED: dropped) at the end; on their own connection, none.
    publisher = MqttLink(MqttSettings(**config["mqtt"]), config["client_id"] + PUBLISHER_SUFFIX, [],
                         reconnect_min_s=config["reconnect_min_s"], reconnect_max_s=config["reconnect_max_s"])
    acks_idle = listen_for_acks(config["acks_socket"], link)  # before connecting: see the module's docstring
    send(("acks_ready", config["acks_socket"]))
    done: asyncio.Future[None] = loop.create_future()

    def read_commands() -> None:
        apply_frames(inp, link, publisher)
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

    link.start(loop)
    publisher.start(loop)
    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    last: dict[str, Any] = {}
    while not done.done():
        state = _state(link, publisher)
        if state != last:
            send(("state", state))
            last = state
        await asyncio.wait([done], timeout=STATE_INTERVAL_S)
    link.pause()
    # the aggregator closes its store before us: the writer's last acknowledgements are on their way
    await loop.run_in_executor(None, acks_idle.wait, ACKS_DRAIN_S)
    await loop.run_in_executor(None, publisher.stop)
    await loop.run_in_executor(None, link.stop)  # flushes what is queued, disconnects cleanly
    send(("state", _state(link, publisher)))


def _state(link: MqttLink, publisher: MqttLink) -> dict[str, Any]:
    """One state for the two connections: the reader's, with the publisher's publishing counters."""
    state = link.state()
    for name in ("published", "publish_errors", "dropped_qos0"):
        state[name] = getattr(publisher, name)
    state["connected"] = link.connected and publisher.connected
    state["last_error"] = link.last_error or publisher.last_error
    return state


def apply_frames(stream: BinaryIO, link: MqttLink, publisher: MqttLink) -> None:
    """``ack`` and ``pub`` frames from the aggregator (stdin) or the writer (its socket), to end-of-file.

    Straight to the link's network thread from this one: no hop through the loop (latency), and one
    thread per source keeps its order (the aggregator is the only one that publishes)."""
    try:
        while (frame := read_frame(stream)) is not None:
            if frame[0] == "ack":
                link.ack(frame[1])
            elif frame[0] == "pub":
                publisher.publish_batch(frame[1])
    except (OSError, ValueError, EOFError):
        pass  # the writer died mid-frame: what it had not sent, the broker redelivers


def listen_for_acks(path: str, link: MqttLink) -> threading.Event:
    """Take the writer's acknowledgements on a Unix socket at ``path`` (one writer at a time; a new
    one after a restart waits in the backlog until the dead one's end-of-file). Returns an event
    set while no writer is connected."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    idle = threading.Event()
    idle.set()

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            idle.clear()
            with conn, conn.makefile("rb") as stream:
                apply_frames(stream, link, link)  # type: ignore[arg-type]  # (the writer only acknowledges)
            idle.set()

    threading.Thread(target=serve, name="acks", daemon=True).start()
    return idle


def main() -> int:
    # Ctrl-C and systemd's stop signal reach the whole process group; the aggregator stops us in
    # order (publishing what is queued first). End-of-file on stdin is our exit.
    set_up_child()
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    # Five threads here (two connections' network threads, two frame readers, the loop) mostly wait on
    # I/O; when one needs the GIL while another computes, waiting out CPython's 5 ms switch interval is
    # the latency target's whole margin (publish -> WebSocket p99 <= 20 ms).
    sys.setswitchinterval(0.0005)
    frame = read_frame(inp)  # type: ignore[arg-type]
    if frame is None or frame[0] != "config":
        return 2
    try:
        asyncio.run(_serve(frame[1], inp, out))  # type: ignore[arg-type]
    except (BrokenPipeError, KeyboardInterrupt):
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
