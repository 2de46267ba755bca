"""What the aggregator's child processes share: the :class:`Worker` that runs each, their frames, their set-up.

The children (:mod:`aggregator.sqlite_writer`, :mod:`aggregator.mqtt_process`,
:mod:`aggregator.analytics.updater`) each talk to the aggregator over their own stdin/stdout
(our pipes; nothing else writes to them) in frames of a 4-byte big-endian length and a
``marshal`` dump. Tuples, lists, dicts, strings, bytes, numbers and None are what a frame holds;
both ends are the same interpreter. marshal rather than msgspec's MessagePack: on a frame of 200
agent messages as the MQTT process sends them, encode + decode took 2.5-2.7 µs a message with
marshal and 3.5-3.8 with msgspec (interleaved, this machine), and msgspec gives lists where
ingest takes tuples. Only the standard library is imported here, so a child starts quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import marshal
import numbers
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

FRAME_LENGTH = struct.Struct("!I")
# A chatty child's pipes (Worker(pipe_bytes=)): room for a couple of full frames (a busy slice's batch is
# about a megabyte); 1 MiB is Linux's default limit for a user.
PIPE_BYTES = 1 << 20
log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- the parent's side

def child_command(module: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """``python -m module args...`` and an environment where a checkout that is not installed finds it."""
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    return [sys.executable, "-m", module, *args], env


class Worker:
    """One child process of the aggregator, driven from the event loop: start, frames, restart, stop.

    The child is ``python -m module args...`` in a session of its own (Ctrl-C and systemd's stop
    signal go to the aggregator, which stops it in order), reading frames on its stdin and writing
    frames on its stdout; ``on_frame`` gets each one, in order. Everything here runs on the loop and
    never blocks it: the loop's pipe transports read and write (:meth:`send` only appends to a
    buffer), with no thread and no lock. A child that dies unasked is counted, reported to
    ``on_exit(code)`` and replaced after ``restart_delay_s``. ``on_start(worker)`` runs after every
    start and sends what a child must have first: its settings and whatever a dead one had not
    confirmed (the user keeps that list: only it knows what "confirmed" means)."""

    def __init__(self, module: str, *args: str, on_frame: Callable[[Any], None],
                 on_start: Callable[[Worker], None] | None = None,
                 on_exit: Callable[[int | None], None] | None = None, restart_delay_s: float = 0.5,
                 pipe_bytes: int | None = None) -> None:
        self.module, self.args, self.on_frame = module, args, on_frame
        self.on_start, self.on_exit, self.restart_delay_s = on_start, on_exit, restart_delay_s
        # Linux: bigger pipes both ways. A frame goes through a pipe only as fast as the loop turns,
        # a pipe's worth (64 KiB by default) a turn: a megabyte's batch behind a busy loop took a second.
        self.pipe_bytes = pipe_bytes
        self.restarts = 0
        self._child: _Child | None = None
        self._stopping = False
        self._restart: asyncio.TimerHandle | None = None
        self._started = asyncio.Event()  # a child is running and has had on_start's frames

    @property
    def pid(self) -> int | None:
        return self._child.transport.get_pid() if self._child is not None else None

    async def start(self) -> None:
        self._stopping = False
        await self._spawn()

    async def started(self) -> None:
        """Return once a child is running (at once, or after the restart in progress)."""
        await self._started.wait()

    def send(self, obj: Any) -> bool:
        """Queue a frame; False if no child can take it (a new one gets what ``on_start`` sends)."""
        child = self._child
        if child is None or child.stdin.is_closing():
            return False
        child.stdin.write(encode_frame(obj))
        return True

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Close the child's stdin (its signal to finish and exit) and wait for it; kill it after
        ``timeout_s``. Frames it writes meanwhile still reach ``on_frame``."""
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
        child, self._child = self._child, None
        if child is None:
            return
        child.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(child.ended), timeout_s)
        except TimeoutError:
            log.error("event=child-stuck module=%s action=kill pid=%s", self.module, child.transport.get_pid())
            with contextlib.suppress(ProcessLookupError):
                child.transport.kill()
            await child.ended

    async def _spawn(self) -> None:
        if self._stopping:
            return
        argv, env = child_command(self.module, *self.args)
        _, child = await asyncio.get_running_loop().subprocess_exec(
            lambda: _Child(self), *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env,
            start_new_session=True)
        self._child = child
        if self.pipe_bytes is not None:
            for fd in (0, 1):  # the child's stdin and stdout
                with contextlib.suppress(OSError, AttributeError):
                    pipe = child.transport.get_pipe_transport(fd).get_extra_info("pipe")
                    fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, self.pipe_bytes)  # Linux only
        if self.on_start is not None:
            self.on_start(self)
        self._started.set()

    def child_exited(self, child: _Child) -> None:
        """Called by the child's protocol once it exited and its pipes are read to the end."""
        if child is not self._child or self._stopping:
            return
        self._started.clear()
        self.restarts += 1
        code = child.transport.get_returncode()
        log.error("event=child-died module=%s code=%s action=restart", self.module, code)
        if self.on_exit is not None:
            self.on_exit(code)
        loop = asyncio.get_running_loop()
        self._restart = loop.call_later(self.restart_delay_s, lambda: loop.create_task(self._spawn()))


class _Child(asyncio.SubprocessProtocol):
    """One child's pipes on the loop: bytes in, whole frames out to the worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.buf = bytearray()
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.SubprocessTransport = transport  # type: ignore[assignment]
        self.stdin: asyncio.WriteTransport = self.transport.get_pipe_transport(0)  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:  # type: ignore[override]
        self.buf += data
        for frame in take_frames(self.buf):
            try:
                self.worker.on_frame(frame)
            except Exception:  # a bug in one frame's handling must not stop the child's reader
                log.exception("event=frame-handler-failed module=%s", self.worker.module)

    def connection_lost(self, exc: Exception | None) -> None:  # exited, and every pipe read to its end
        self.transport.close()
        self.ended.set_result(None)
        self.worker.child_exited(self)


def set_up_child() -> None:
    """A child's first act: ignore the group's stop signals, log to the aggregator's stderr, tune GC.

    Ctrl-C in a terminal and systemd's stop signal reach the whole process group. The aggregator
    then finishes what it holds with the child (the last commit, the last publishes) and closes
    the pipe; a child dying first would lose that (and be restarted during shutdown)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    tune_gc()


def tune_gc(gen0: int = 50_000) -> None:
    """Fewer garbage collections, none of them over what exists at start-up (modules, settings).

    Every message becomes a few tuples, and CPython's default first generation (700 objects)
    made the collector run every few hundred of them, walking the same long-lived objects each
    time (the aggregator measured it at ~9 µs per message: ``ingest.gc_us_per_msg``). Rows and
    messages hold no cycles; reference counting frees them."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, 20, 100)


# ----------------------------------------------------------------------------- frames

def encode_frame(obj: Any) -> bytes:
    """A 4-byte length and a marshal dump of ``obj``.

    marshal takes exact built-in types only: a numpy float or a named tuple slipping into a row
    is turned into the plain value SQLite would have stored (a frame that could not be written
    would never be committed, and its messages never acknowledged)."""
    try:
        data = marshal.dumps(obj)
    except ValueError:
        data = marshal.dumps(_plain(obj))
    return FRAME_LENGTH.pack(len(data)) + data


def _plain(obj: Any) -> Any:
    if obj is None or type(obj) in (str, bytes, float, int, bool):
        return obj
    if isinstance(obj, dict):
        return {_plain(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    return str(obj)  # SQLite could not bind it either; its text is the most useful thing to keep


def write_frame(stream: BinaryIO, obj: Any) -> None:
    stream.write(encode_frame(obj))
    stream.flush()


def read_frame(stream: BinaryIO) -> Any:
    """The next frame from a blocking stream, or None at end-of-file (the other side is gone)."""
    head = _read_exact(stream, FRAME_LENGTH.size)
    if head is None:
        return None
    body = _read_exact(stream, FRAME_LENGTH.unpack(head)[0])
    return None if body is None else marshal.loads(body)


def take_frames(buf: bytearray) -> list[Any]:
    """The complete frames at the head of ``buf``, removed from it; a partial one stays.

    For a reader that gets whatever bytes are there (an event loop's ``add_reader``)."""
    frames: list[Any] = []
    pos, size, head = 0, len(buf), FRAME_LENGTH.size
    # marshal reads a view of the buffer: slicing the bytearray would copy each frame (about a
    # megabyte under load) into a fresh allocation first, 1.5 µs a message on the busy thread.
    with memoryview(buf) as view:
        while size - pos >= head:
            end = pos + head + FRAME_LENGTH.unpack_from(buf, pos)[0]
            if end > size:
                break
            with view[pos + head:end] as body:
                frames.append(marshal.loads(body))
            pos = end
    del buf[:pos]  # after the views are released (a bytearray with exports cannot be resized)
    return frames


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
