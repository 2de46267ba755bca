"""agent.runtime's threads: serial lines get back-pressure instead of piling up in memory."""

from __future__ import annotations

import threading
from pathlib import Path

from agent.config import load_device
from agent.runtime import INBOX_LINES, AgentRuntime, CountingSink
from tests.agent.helpers import write_device
from tests.conftest import wait_for

LINE = b"RSSI: -55 Ch: 6 Peer MAC: 02:11:22:33:44:55 SSID: "


def test_a_reader_waits_when_the_inbox_is_full_and_goes_on_once_the_loop_drains_it(config_dir: Path) -> None:
    device = load_device(write_device(config_dir, serial_port="loop://"))
    runtime = AgentRuntime(device, CountingSink(device.agent_id))
    on_line = runtime.readers[0].on_line  # what the serial reader thread calls for every line
    total = INBOX_LINES + 500
    fed = 0

    def feed() -> None:
        nonlocal fed
        for i in range(total):
            on_line(LINE, 1000.0 + i * 0.01)
            fed += 1

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    wait_for(lambda: runtime.inbox.qsize() >= INBOX_LINES)
    feeder.join(timeout=0.3)  # no loop drains the inbox yet: the feeder must still be held up
    assert feeder.is_alive() and fed < total
    assert runtime.inbox.qsize() == INBOX_LINES

    stop = threading.Event()
    loop = threading.Thread(target=runtime.run, args=(stop,), daemon=True)
    loop.start()
    try:
        feeder.join(timeout=10)
        assert not feeder.is_alive() and fed == total
        wait_for(lambda: runtime.pipeline.lines == total)
    finally:
        stop.set()
        loop.join(timeout=5)
        runtime.close()


def test_readers_never_wait_once_the_loop_has_ended(config_dir: Path) -> None:
    device = load_device(write_device(config_dir, serial_port="loop://"))
    runtime = AgentRuntime(device, CountingSink(device.agent_id))
    stop = threading.Event()
    stop.set()
    runtime.run(stop)  # returns at once: the loop has ended
    on_line = runtime.readers[0].on_line
    for i in range(INBOX_LINES + 10):  # would block forever if the reader waited for room
        on_line(LINE, 1000.0 + i)
    assert runtime.inbox.qsize() == INBOX_LINES + 10
    runtime.close()
