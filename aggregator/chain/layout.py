"""The chain directory's layout, shared by the shipper, the generator and the chain job.

``<chain>/<kind>/store=<id>/date=<yyyy-mm-dd>/hour=<hh>/part-<first>-<last>.jsonl`` where kind is
``visits`` or ``zone_visits``, date and hour are the store's local ones (its day, as /api/stats
counts it), and ``first``/``last`` are the store's visit sequence numbers bounding the shipping
batch, so a batch re-written after a crash lands on the very same names (exactly once). Files are
written under a hidden name (``.part-...``, which Flink's file source skips), fsynced, then
renamed: a reader sees a whole file or none.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path

import orjson

KINDS = ("visits", "zone_visits")


def partition_dir(root: Path, kind: str, store: str, day: str, hour: int) -> Path:
    return root / kind / f"store={store}" / f"date={day}" / f"hour={hour:02d}"


def part_name(first_seq: int, last_seq: int) -> str:
    return f"part-{first_seq:012d}-{last_seq:012d}.jsonl"


def chain_id(key: bytes, value: str) -> str:
    """A visitor or visit id re-keyed for the chain: HMAC-SHA256 under the chain key, 20 hex digits.

    One-way, so the chain cannot go back to the store's id (itself an HMAC of a MAC) or join its
    rows to the store database; the same key in every store makes one person one id chain-wide."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:20]


class PartWriter:
    """Writes one part file atomically. The filesystem seam: tests make it run out of space.

    ``sync=False`` skips the fsyncs (the rename stays): for generated history, where a crash means
    generating again, and thousands of fsyncs would be most of the time."""

    def __init__(self, *, sync: bool = True) -> None:
        self.sync = sync

    def write(self, path: Path, rows: Iterable[dict]) -> int:
        """Write ``rows`` as JSON lines to ``path`` (temp name, fsync, rename); returns bytes written."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name("." + path.name + ".tmp")
        data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                if self.sync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):  # on a read-only or full filesystem this may fail too
                tmp.unlink(missing_ok=True)
            raise
        if self.sync:
            _fsync_dir(path.parent)
        return len(data)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX: a rename is in the directory's data)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
