"""What the aggregator's child processes share: how they start, the frames they exchange, their set-up.

The children (:mod:`aggregator.sqlite_writer`, :mod:`aggregator.mqtt_process`,
:mod:`aggregator.analytics.updater`) each talk to the aggregator over their own stdin/stdout
(our pipes; nothing else writes to them) in frames of a
4-byte big-endian length and a ``marshal`` dump. Tuples, lists, dicts, strings, bytes, numbers
and None are what a frame holds; marshal writes them in a third of pickle's time, on the
aggregator's busy thread, and both ends are the same interpreter.

Only the standard library is imported here, so a child starts in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import marshal
import numbers
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, BinaryIO

FRAME_LENGTH = struct.Struct("!I")


# ----------------------------------------------------------------------------- starting one

def spawn(module: str, *args: str) -> subprocess.Popen[bytes]:
    """``python -m module args...`` with pipes on stdin and stdout, in a session of its own.

    Its own session: Ctrl-C in a terminal (and systemd's stop signal to the process group) goes to
    the aggregator, which stops the child in order; the child's own exit is end-of-file."""
    # the package's own root first, so a checkout that is not installed finds the module too
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    return subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env, start_new_session=True)


def end(process: subprocess.Popen[bytes], timeout_s: float = 2.0) -> None:
    """End a child whose protocol is "end-of-file on stdin means exit": close its stdin, wait, kill
    it if it takes longer than ``timeout_s`` (work it was doing must be safe to cut short), then
    close its stdout. Also tidies up after a child that already died."""
    with contextlib.suppress(OSError):
        process.stdin.close()  # type: ignore[union-attr]
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


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
