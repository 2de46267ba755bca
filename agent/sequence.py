"""Message ids ``<agent>:<sequence>`` that stay unique across restarts and crashes.

The aggregator drops a message whose id it has stored, so an id reused after a restart would
silently lose a real message. Writing the counter to disk for every message would cost a file
write per message; instead we reserve a block (write ``next + BLOCK`` durably, then hand out ids
from memory). A crash skips the rest of the block; ids are never reused, only sometimes skipped.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

BLOCK = 1000


class Sequence:
    """Thread-safe, restart-safe counter. ``next_id()`` -> ``"agent-1:1042"``."""

    def __init__(self, agent_id: str, path: str | os.PathLike[str], *, block: int = BLOCK) -> None:
        self.agent_id = agent_id
        self.path = Path(path)
        self.block = block
        self._lock = threading.Lock()
        self._next = self._load()
        self._reserved_until = self._next  # nothing reserved yet: the first call writes a block

    def _load(self) -> int:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return 1
        try:
            value = int(text)
        except ValueError:
            # A torn file cannot happen with the atomic replace below; if it does, never go back.
            raise ValueError(f"{self.path}: a sequence number, got {text[:40]!r}") from None
        return max(1, value)

    def _reserve(self, until: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(f"{until}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._reserved_until = until

    def next_seq(self) -> int:
        with self._lock:
            if self._next >= self._reserved_until:
                self._reserve(self._next + self.block)
            value = self._next
            self._next += 1
            return value

    def next_id(self) -> tuple[str, int]:
        """The next message id and its sequence number (the spool orders by the number)."""
        seq = self.next_seq()
        return f"{self.agent_id}:{seq}", seq
