"""The agent-tier MQTT connection in a child process: reading, parsing and decoding beside ingest.

Why a process: the aggregator's ingest (fusion, visits, the customer tier) is one thread of
Python, and everything else in its process competes with it for the same interpreter lock. The
connection's own work (the network thread's paho reads and writes, building message tuples, JSON
decoding and validating every payload, publishing the customer tier, PUBACKs) was about a third
of the aggregator's CPU per message; here it runs on the other core. The SQLite writer
(:mod:`aggregator.sqlite_writer`) is split off the same way; both are started and framed by
:mod:`aggregator.child_process`.

Parent -> child, on the child's stdin: ``("config", {...})`` first, then ``("ack", [(mid, qos),
...])`` after each commit, ``("pub", [(topic, payload, qos, retain), ...])`` in publishing order,
``("stop",)``. Child -> parent, on its stdout: ``("msgs", [(topic, payload, mid, qos, received,
decoded), ...])`` a drained slice at a time, ``("state", {...})`` when the connection's state or
counters change, ``("stopped",)``.

What is not lost:

* The child runs a plain :class:`~aggregator.mqtt_link.MqttLink` (persistent session, manual
  acks). Messages are acknowledged only when the parent says their batch is committed, so a child
  that dies loses nothing: the parent starts another, and the broker redelivers to it whatever
  was not acknowledged (the message ids make a repeat harmless).
* The child has its own session (Ctrl-C and systemd's stop signal go to the aggregator, which stops
  it in order) and exits when its stdin closes, so a parent killed with -9 leaves no orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, BinaryIO

from agent.config import MqttSettings
from agent.contract import Presence, Rejection, decode_agent, presence_fields
from aggregator.child_process import read_frame, set_up_child, spawn, take_frames, write_frame
from aggregator.mqtt_link import Incoming, LinkBase, MqttLink

log = logging.getLogger(__name__)

STATE_INTERVAL_S = 0.2  # how often the child looks for a changed state to report
RESTART_DELAY_S = 0.5
READ_BYTES = 1 << 20
PIPE_BYTES = 1 << 20  # the child's stdout pipe: room for a couple of full frames


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
    holds the child's decoding. The child's output is read by the event loop itself
    (``add_reader``): no thread in between to hand over to, or to fight for the GIL. ``ack`` and
    ``publish`` may be called from any thread. The state and counters are the child's link's,
    as its last ``state`` frame gave them."""

    def __init__(self, settings: MqttSettings, client_id: str, subscriptions: list[str], *,
                 on_batch: Callable[[list[Incoming]], None] | None = None,
                 reconnect_min_s: float = 1.0, reconnect_max_s: float = 30.0) -> None:
        super().__init__(settings, client_id, subscriptions, on_batch)
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.restarts = 0
        self._base: dict[str, int] = {}  # counters of children that died, so totals keep counting
        self._stopping = False
        self._stopped = threading.Event()  # the child said "stopped", or is gone
        self._lock = threading.Lock()  # the child's stdin, and which child is current
        self._child: subprocess.Popen[bytes] | None = None
        self._buf = bytearray()

    # ------------------------------------------------------------------ lifecycle (event loop)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._spawn()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Publish what is queued, disconnect cleanly and end the child (blocking: call it from an
        executor thread while the loop runs, so the loop can read the child's last words)."""
        self._paused = True
        self.flush()
        self._stopping = True
        self._send(("stop",))
        child = self._child
        if child is None:
            return
        try:
            child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.error("event=mqtt-process-stuck action=kill pid=%d", child.pid)
            child.kill()
            child.wait()
        loop = self._loop
        if loop is not None and loop.is_running() and not _in_loop_thread(loop):
            self._stopped.wait(2.0)  # the loop reads what the child wrote before it exited
            done = threading.Event()
            try:
                loop.call_soon_threadsafe(lambda: (self._close(child), done.set()))
                done.wait(5.0)
                return
            except RuntimeError:
                pass  # the loop closed meanwhile
        # called on the loop's own thread, or with no loop running: read the child's last words here
        while not self._stopped.is_set() and child.stdout is not None and not child.stdout.closed:
            self._readable(child)
        self._close(child)

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    @property
    def inbox_depth(self) -> int:
        """Messages received and not yet handed over: none wait here (the loop reads the pipe)."""
        return 0

    # ------------------------------------------------------------------ the child

    def _spawn(self) -> None:
        loop = self._loop
        assert loop is not None
        child = spawn("aggregator.mqtt_process")
        assert child.stdout is not None
        fd = child.stdout.fileno()
        with contextlib.suppress(OSError):  # Linux: fewer wake-ups per frame; elsewhere the default
            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
        os.set_blocking(fd, False)
        self._buf = bytearray()
        self._stopped.clear()
        with self._lock:
            self._child = child
        config = {"mqtt": asdict(self.settings), "client_id": self.client_id,
                  "subscriptions": list(self.subscriptions), "reconnect_min_s": self.reconnect_min_s,
                  "reconnect_max_s": self.reconnect_max_s, "availability": self.availability}
        self._send(("config", config))  # if it died at once, the reader sees end-of-file and restarts it
        loop.add_reader(fd, self._readable, child)

    def _readable(self, child: subprocess.Popen[bytes]) -> None:
        """The loop's reader: every complete frame the child has written, handled in order."""
        assert child.stdout is not None
        try:
            data = os.read(child.stdout.fileno(), READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._child_gone(child)
            return
        self._buf += data
        for frame in take_frames(self._buf):
            self._frame(frame)

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
        elif kind == "stopped":
            self._stopped.set()

    def _child_gone(self, child: subprocess.Popen[bytes]) -> None:
        """End-of-file from the child: it stopped as asked, or it died and another takes over."""
        loop = self._loop
        assert loop is not None and child.stdout is not None
        with contextlib.suppress(Exception):  # a loop already closed has no reader to remove
            loop.remove_reader(child.stdout.fileno())
        self._stopped.set()
        if self._stopping or child is not self._child:
            return
        code = child.poll()
        log.error("event=mqtt-process-died code=%s action=restart", code)
        self.connected = self.subscribed = False
        # a new child counts from 0: keep the totals
        self._base = {name: value for name, value in self.state().items() if type(value) is int}
        self.restarts += 1
        self._close(child)
        loop.call_later(RESTART_DELAY_S, self._respawn)

    def _respawn(self) -> None:
        if not self._stopping:
            self._spawn()

    def _close(self, child: subprocess.Popen[bytes]) -> None:
        """Unregister and close the child's pipes (in the loop's thread, or once it has stopped)."""
        loop = self._loop
        for stream in (child.stdin, child.stdout):
            if stream is None or stream.closed:
                continue
            if stream is child.stdout and loop is not None and not loop.is_closed():
                with contextlib.suppress(Exception):
                    loop.remove_reader(stream.fileno())
            with contextlib.suppress(OSError):
                stream.close()
        if child.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1.0)
        if self._stopping:
            self.connected = self.subscribed = False

    def _send(self, frame: tuple[Any, ...]) -> bool:
        with self._lock:
            child = self._child
            if child is None or child.stdin is None or child.stdin.closed:
                return False
            try:
                write_frame(child.stdin, frame)  # type: ignore[arg-type]
                return True
            except (BrokenPipeError, OSError, ValueError):
                return False  # the child died: the loop restarts it; the broker redelivers

    # ------------------------------------------------------------------ any thread

    def ack(self, items: list[tuple[int, int]]) -> None:
        """Acknowledge ``(mid, qos)`` pairs to the broker (called by the writer after a commit)."""
        if items:
            self._send(("ack", items))

    def flush(self) -> None:
        self._flush_scheduled = False
        outbox = self._outbox
        if not outbox:
            return
        messages = [outbox.popleft() for _ in range(len(outbox))]
        if not self._send(("pub", messages)):
            self.publish_errors += len(messages)


def _in_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


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
    done: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def read_commands() -> None:
        while True:
            try:
                frame = read_frame(inp)
            except (OSError, ValueError, EOFError):
                frame = None
            if frame is None or frame[0] == "stop":
                loop.call_soon_threadsafe(finish)
                return
            if frame[0] == "ack":
                link.ack(frame[1])
            elif frame[0] == "pub":
                # straight to the link's network thread from this one, the only one that publishes
                # here: no hop through the loop (latency), and one thread keeps the aggregator's order
                link.publish_batch(frame[1])

    link.start(loop)
    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    last: dict[str, Any] = {}
    while not done.done():
        state = link.state()
        if state != last:
            send(("state", state))
            last = state
        await asyncio.wait([done], timeout=STATE_INTERVAL_S)
    link.pause()
    await loop.run_in_executor(None, link.stop)  # flushes what is queued, disconnects cleanly
    send(("state", link.state()))
    send(("stopped",))


def main() -> int:
    # Ctrl-C and systemd's stop signal reach the whole process group; the aggregator stops us in
    # order (publishing what is queued first). End-of-file on stdin, or "stop", is our exit.
    set_up_child()
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    # Three threads here (the link's network thread, the commands reader, the loop) mostly wait on I/O; when one needs
    # the GIL while another computes, waiting out CPython's 5 ms switch interval is the latency
    # target's whole margin (publish -> WebSocket p99 <= 20 ms).
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
