"""The frames the aggregator and its child processes exchange."""

from __future__ import annotations

import io
import os
import signal

from aggregator.child_process import Worker, encode_frame, read_frame, take_frames
from tests.aggregator.conftest import wait_until
from tests.conftest import process_ended


def test_frames_arrive_whole_and_in_order_however_the_bytes_are_cut() -> None:
    frames = [("msgs", [("t/a", b"\x00payload", 1, 1, 1.5, None)]), ("state", {"connected": True}), ("stopped",),
              ("pub", [("t/b", b"x" * 70_000, 0, False)])]  # one frame larger than a pipe read
    stream = b"".join(encode_frame(f) for f in frames)
    for cut in (1, 7, 4096, len(stream)):
        buf, got = bytearray(), []
        for start in range(0, len(stream), cut):
            buf += stream[start:start + cut]
            got += take_frames(buf)
        assert got == frames
        assert buf == bytearray()  # nothing left over, nothing taken twice
    blocking = io.BytesIO(stream[:-1])  # the writer died in the middle of its last frame
    assert [read_frame(blocking) for _ in frames] == [*frames[:-1], None]


async def test_a_worker_answers_in_order_restarts_a_dead_child_with_its_resend_and_stops() -> None:
    frames: list[tuple] = []
    exits: list[int | None] = []
    unconfirmed = [("hello",)]  # what on_start sends every new child first, as Store resends batches

    def on_start(worker: Worker) -> None:
        for frame in unconfirmed:
            worker.send(frame)

    worker = Worker("tests.aggregator.echo_child", on_frame=frames.append, on_start=on_start,
                    on_exit=exits.append, restart_delay_s=0.05)
    await worker.start()
    for i in range(100):
        assert worker.send(("n", i, b"x" * (i * 997 % 70_000)))  # some frames larger than a pipe's buffer
    await wait_until(lambda: len(frames) == 101)
    first = worker.pid
    assert [f[1] for f in frames] == [("hello",), *[("n", i, b"x" * (i * 997 % 70_000)) for i in range(100)]]
    assert {f[2] for f in frames} == {first}

    frames.clear()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await wait_until(lambda: len(frames) == 1)  # a new child, and the resend reached it
    assert worker.restarts == 1 and exits == [-signal.SIGKILL]
    assert frames[0][1] == ("hello",) and frames[0][2] == worker.pid != first

    second = worker.pid
    await worker.stop()
    assert worker.pid is None and not worker.send(("late",))
    assert second is not None and process_ended(second, timeout_s=0.1)  # stop returned after it exited
    assert worker.restarts == 1 and exits == [-signal.SIGKILL]  # an asked-for exit is not a death
