"""A child for the Worker's tests: answers every frame with ("echo", frame, its pid), exits at end-of-file."""

from __future__ import annotations

import os
import sys

from aggregator.child_process import read_frame, set_up_child, write_frame


def main() -> int:
    set_up_child()
    while (frame := read_frame(sys.stdin.buffer)) is not None:
        write_frame(sys.stdout.buffer, ("echo", frame, os.getpid()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
