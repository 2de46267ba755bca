"""The disk spool (bounded, ordered, survives reopening) and restart-safe message ids."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.sequence import Sequence
from agent.spool import Spool


def test_spool_keeps_order_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    with Spool(path, max_messages=100) as spool:
        for seq in (3, 1, 2):
            spool.append(seq, "t", f"p{seq}".encode())
        assert spool.depth == 3
    with Spool(path, max_messages=100) as spool:
        assert spool.depth == 3
        assert [r[0] for r in spool.peek()] == [1, 2, 3]
        spool.remove([1, 2])
        assert [(s, bytes(p)) for s, _, p in spool.peek()] == [(3, b"p3")]


def test_spool_drops_oldest_and_counts_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    with Spool(path, max_messages=5) as spool:
        spool.append_many([(i, "t", b"x") for i in range(1, 9)])
        assert spool.depth == 5 and spool.dropped == 3
        assert [r[0] for r in spool.peek()] == [4, 5, 6, 7, 8]
    with Spool(path, max_messages=5) as spool:
        assert spool.dropped == 3
        spool.append(9, "t", b"x")
        assert spool.dropped == 4 and spool.depth == 5


def test_spool_is_a_plain_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    with Spool(path) as spool:
        spool.append(1, "floorwalker/demo/agents/a/enter", b"{}")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM spool").fetchone()[0] == 1
    db.close()


def test_sequence_never_reuses_ids_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "seq"
    first = Sequence("agent-1", path, block=10)
    ids = [first.next_seq() for _ in range(25)]
    assert ids == list(range(1, 26))
    second = Sequence("agent-1", path, block=10)  # a crash: the rest of the block is skipped
    later = second.next_seq()
    assert later > 25
    msg_id, seq = second.next_id()
    assert msg_id == f"agent-1:{seq}" and seq == later + 1
