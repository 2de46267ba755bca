"""The serial reader through a real pseudo-terminal: lines, noise, over-long lines, unplug and replug."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import SerialPortUnavailable
from agent.sources.parser import MAX_LINE_BYTES, parse_line
from agent.sources.serial_reader import SerialLineReader
from tests.agent.ptys import FakeSniffer


class Lines:
    def __init__(self) -> None:
        self.items: list[tuple[bytes, float]] = []
        self.cond = threading.Condition()

    def __call__(self, line: bytes, ts: float) -> None:
        with self.cond:
            self.items.append((line, ts))
            self.cond.notify_all()

    def wait(self, n: int, timeout_s: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while len(self.items) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"only {len(self.items)} of {n} lines: {self.items}"
                self.cond.wait(left)
            return [line for line, _ in self.items]


@pytest.fixture
def sniffer(tmp_path: Path) -> Iterator[FakeSniffer]:
    fake = FakeSniffer(tmp_path / "ttyUSB-sniffer")
    yield fake
    fake.close()


def test_reads_lines_with_receipt_timestamps(sniffer: FakeSniffer) -> None:
    lines = Lines()
    before = time.time()
    with SerialLineReader(sniffer.port, on_line=lines, name="s1") as reader:
        assert reader.connected.wait(5)
        sniffer.write(b"RSSI: -67 Ch: 6 Peer MAC: aa:bb:cc:dd:ee:ff SSID: Home\r\n")
        sniffer.write(b'{"rssi":-70,"ad')  # a line split across reads
        time.sleep(0.05)
        sniffer.write(b'dr2":"aa:bb:cc:dd:ee:01"}\n')
        got = lines.wait(2)
    assert [parse_line(x).mac for x in got] == ["aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:01"]  # type: ignore[union-attr]
    assert all(before <= ts <= time.time() for _, ts in lines.items)


def test_over_long_line_reported_once_and_next_line_intact(sniffer: FakeSniffer) -> None:
    lines = Lines()
    with SerialLineReader(sniffer.port, on_line=lines, name="s1") as reader:
        assert reader.connected.wait(5)  # pyserial flushes input on open: write after it
        sniffer.write(b"A" * (MAX_LINE_BYTES * 3) + b"\nRSSI: -50 Peer MAC: aa:bb:cc:dd:ee:ff\n")
        got = lines.wait(2)
    assert [parse_line(x) if isinstance(parse_line(x), str) else "probe" for x in got] == ["too-long", "probe"]


def test_missing_port_is_a_typed_error(tmp_path: Path) -> None:
    reader = SerialLineReader(str(tmp_path / "nothing"), on_line=Lines())
    with pytest.raises(SerialPortUnavailable, match="cannot open"):
        reader.open()


def test_unplugged_device_is_reopened_and_gap_counted(sniffer: FakeSniffer) -> None:
    lines = Lines()
    reader = SerialLineReader(sniffer.port, on_line=lines, name="s1", min_backoff_s=0.05, max_backoff_s=0.2)
    with reader:
        assert reader.connected.wait(5)
        sniffer.write(b"RSSI: -60 Peer MAC: aa:bb:cc:dd:ee:01\n")
        lines.wait(1)
        sniffer.unplug()
        deadline = time.monotonic() + 5
        while reader.connected.is_set():
            assert time.monotonic() < deadline, "the reader did not notice the unplug"
            time.sleep(0.02)
        time.sleep(0.3)  # gone for a while: the reader keeps retrying with back-off
        sniffer.plug()
        assert reader.connected.wait(5), "the reader did not reopen the port"
        sniffer.write(b"RSSI: -61 Peer MAC: aa:bb:cc:dd:ee:02\n")
        got = lines.wait(2)
    assert reader.reconnects == 1
    assert reader.gap_s_total >= 0.3
    assert parse_line(got[-1]).mac == "aa:bb:cc:dd:ee:02"  # type: ignore[union-attr]
