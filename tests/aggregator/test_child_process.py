"""The frames the aggregator and its child processes exchange."""

from __future__ import annotations

import io

from aggregator.child_process import encode_frame, read_frame, take_frames


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
