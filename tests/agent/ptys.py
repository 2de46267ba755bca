"""A real pseudo-terminal standing in for a USB sniffer, behind a stable symlink like /dev/serial/by-id."""

from __future__ import annotations

import os
import tty
from pathlib import Path


class FakeSniffer:
    """The master side of a pty; ``port`` is a symlink to the slave that survives unplug/replug."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass as a USB CDC device would
        name = os.ttyname(slave)
        os.close(slave)
        self.master = master
        tmp = self.link.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(name)
        os.replace(tmp, self.link)

    def unplug(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None
        self.link.unlink(missing_ok=True)

    def write(self, data: bytes) -> None:
        assert self.master is not None, "unplugged"
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    @property
    def port(self) -> str:
        return str(self.link)

    def close(self) -> None:
        self.unplug()
