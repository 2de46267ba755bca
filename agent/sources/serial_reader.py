"""Lines from a serial sniffer, read in a thread, with reopen and back-off when the device vanishes.

A USB sniffer gets unplugged, browns out or re-enumerates; the agent must notice, keep trying
with growing pauses (so a dead port does not eat the CPU), pick up again when it comes back, and
say in its health how often and for how long it was gone. Lines are timestamped on receipt: the
sniffer has no clock. ``port`` is anything pyserial's ``serial_for_url`` opens: a device path, a
``/dev/serial/by-id`` symlink, a pseudo-terminal in tests, or ``loop://``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import serial

from agent.errors import SerialPortUnavailable
from agent.sources.parser import MAX_LINE_BYTES

log = logging.getLogger(__name__)

LineHandler = Callable[[bytes, float], None]


class SerialLineReader:
    """Calls ``on_line(raw_line, ts)`` for every line read from ``port``, from its own thread."""

    def __init__(self, port: str, *, on_line: LineHandler, baud: int = 115200, name: str = "serial",
                 min_backoff_s: float = 0.2, max_backoff_s: float = 10.0, read_timeout_s: float = 0.2) -> None:
        self.port = port
        self.baud = baud
        self.name = name
        self.on_line = on_line
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.read_timeout_s = read_timeout_s
        self.reconnects = 0
        self.gap_s_total = 0.0
        self.last_gap_s = 0.0
        self.lines = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial: serial.SerialBase | None = None

    def open(self) -> None:
        """Open the port now; :class:`SerialPortUnavailable` when it is not there (used at start-up)."""
        try:
            self._serial = serial.serial_for_url(self.port, baudrate=self.baud, timeout=self.read_timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SerialPortUnavailable(f"{self.name}: cannot open {self.port}: {_short(exc)}") from None
        self.connected.set()

    def start(self) -> SerialLineReader:
        self._thread = threading.Thread(target=self._run, name=f"serial-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close()

    def __enter__(self) -> SerialLineReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _close(self) -> None:
        ser, self._serial = self._serial, None
        self.connected.clear()
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError) as exc:
                log.debug("event=serial-close-failed sniffer=%s error=%s", self.name, _short(exc))

    def _run(self) -> None:
        backoff_s = self.min_backoff_s
        lost_at: float | None = None
        while not self._stop.is_set():
            if self._serial is None:
                try:
                    self.open()
                except SerialPortUnavailable as exc:
                    if lost_at is None:
                        lost_at = time.monotonic()
                        log.warning("event=serial-unavailable sniffer=%s port=%s reason=%s",
                                    self.name, self.port, exc)
                    self._stop.wait(backoff_s)
                    backoff_s = min(self.max_backoff_s, backoff_s * 2)
                    continue
                if lost_at is not None:
                    self.last_gap_s = time.monotonic() - lost_at
                    self.gap_s_total += self.last_gap_s
                    self.reconnects += 1
                    log.info("event=serial-reopened sniffer=%s port=%s gap_s=%.1f reconnects=%d",
                             self.name, self.port, self.last_gap_s, self.reconnects)
                    lost_at = None
                backoff_s = self.min_backoff_s
            try:
                self._read_until_error()
            except (serial.SerialException, OSError, TypeError) as exc:
                # TypeError: pyserial's posix read can hit a closed fd as None when the device vanishes.
                log.warning("event=serial-lost sniffer=%s port=%s reason=%s", self.name, self.port, _short(exc))
                lost_at = time.monotonic()
                self._close()
        self._close()

    def _read_until_error(self) -> None:
        buffer = b""
        discarding = False
        ser = self._serial
        assert ser is not None
        while not self._stop.is_set():
            chunk = ser.read(max(1, ser.in_waiting))
            if not chunk:
                continue
            ts = time.time()
            buffer += chunk
            while True:
                cut = buffer.find(b"\n")
                if cut < 0:
                    break
                line, buffer = buffer[:cut], buffer[cut + 1:]
                if discarding:  # the tail of an over-long line, already reported
                    discarding = False
                    continue
                self.lines += 1
                self.on_line(line, ts)
            if len(buffer) > MAX_LINE_BYTES:
                # A lost newline: report the line once as over-long, drop the rest up to the next newline.
                if not discarding:
                    self.lines += 1
                    self.on_line(buffer[:MAX_LINE_BYTES + 1], ts)
                discarding = True
                buffer = b""


def _short(exc: BaseException) -> str:
    return str(exc).replace("\n", " ")[:160] or type(exc).__name__
