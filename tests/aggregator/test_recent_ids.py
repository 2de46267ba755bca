"""RecentIds: the last ``window`` message ids are always remembered, and never more than twice that."""

from __future__ import annotations

import pytest

from aggregator.recent_ids import RecentIds


@pytest.mark.parametrize("window", [1, 2, 7, 100])
def test_the_last_window_ids_are_remembered_and_memory_is_bounded(window: int) -> None:
    recent = RecentIds(window)
    for i in range(10 * window + 3):
        recent.add(f"m:{i}")
        assert all(f"m:{j}" in recent for j in range(max(0, i - window + 1), i + 1))
        assert len(recent) <= 2 * window
    assert "m:0" not in recent  # long gone
    assert "never" not in recent


def test_a_repeated_id_is_still_known_and_a_bad_window_is_refused() -> None:
    recent = RecentIds(3)
    for msg_id in ("a", "a", "b"):
        recent.add(msg_id)
    assert "a" in recent and "b" in recent
    with pytest.raises(ValueError, match="window"):
        RecentIds(0)
