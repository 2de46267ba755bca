"""RSSI smoothing that survives multipath dips and probe bursts.

Phones probe in bursts (several frames within a second, then silence for seconds to minutes), and
indoor RSSI jumps by 5-10 dB when a body or a shelf blocks the direct path. A plain moving
average is dragged by every dip; a median needs a window that bursts make meaningless. We keep a
*time-decayed* weighted mean (each reading's weight halves every ``half_life_s``), so a burst of
ten frames counts like one fresh reading plus some confidence, and a reading after a long silence
replaces an old value almost entirely. Each reading's pull is clipped to ``outlier_db`` from the
current value (a Huber step), so one 20 dB dip moves the estimate by at most ``outlier_db`` times its
weight, while a real change (the shopper walked away) wins after a few readings.
"""

from __future__ import annotations

import math

from agent.errors import BadReading

# A reading alone, after a silence this many half-lives long, is the whole story.
_BURST_WEIGHT = 1.0
# The frames of one burst (~100 ms) average; the burst before, 2 s earlier, keeps 6 % of its say.
# Smoothing across bursts is the motion filter's job (the agent's multilateration and the
# aggregator's fusion both run one): a second smoother in front of it made the fused track trail a
# walker, and a 2 s-step scenario's Sport stop was never seen. scenarios.offer_match (seed 000's
# example + 20 tab-made 2 s-step scenarios, tests/benchmarks/bench_scenarios.py) with a half-life of
# 8 s (the old default): 7 of 21; 4 s: 9; 2 s: 16; 1 s: 18; 0.5 s: 20; 0.25 s: 20.
HALF_LIFE_S = 0.5


def check_rssi(rssi_dbm: float) -> float:
    """The RSSI as a float, or BadReading: NaN, inf and positive dBm are not radio readings."""
    try:
        value = float(rssi_dbm)
    except (TypeError, ValueError):
        raise BadReading(f"rssi_dbm: a number, got {rssi_dbm!r}") from None
    if not math.isfinite(value) or not -150.0 <= value <= 20.0:
        raise BadReading(f"rssi_dbm: a finite value in -150..20 dBm, got {rssi_dbm!r}")
    return value


class RssiSmoother:
    """Time-decayed, outlier-clipped mean of one device's RSSI at one receiver."""

    __slots__ = ("_last_ts", "_sum", "_weight", "half_life_s", "outlier_db", "value")

    def __init__(self, *, half_life_s: float = HALF_LIFE_S, outlier_db: float = 8.0) -> None:
        if not (half_life_s > 0 and math.isfinite(half_life_s)):
            raise ValueError(f"half_life_s must be a positive number, got {half_life_s!r}")
        if not (outlier_db > 0 and math.isfinite(outlier_db)):
            raise ValueError(f"outlier_db must be a positive number, got {outlier_db!r}")
        self.half_life_s = float(half_life_s)
        self.outlier_db = float(outlier_db)
        self._sum = 0.0
        self._weight = 0.0
        self._last_ts: float | None = None
        self.value: float | None = None

    def update(self, ts: float, rssi_dbm: float) -> float:
        """Add one reading taken at ``ts`` (seconds); returns the smoothed RSSI.

        Readings out of order (``ts`` earlier than the last one) count as simultaneous.
        """
        rssi = check_rssi(rssi_dbm)
        if not math.isfinite(ts):
            raise BadReading(f"ts: a finite time in seconds, got {ts!r}")
        if self.value is None or self._last_ts is None:
            self._sum, self._weight, self._last_ts, self.value = rssi, _BURST_WEIGHT, ts, rssi
            return rssi
        dt = max(0.0, ts - self._last_ts)
        decay = 0.5 ** (dt / self.half_life_s)
        delta = rssi - self.value
        clipped = self.value + max(-self.outlier_db, min(self.outlier_db, delta))
        self._sum = self._sum * decay + clipped * _BURST_WEIGHT
        self._weight = self._weight * decay + _BURST_WEIGHT
        self._last_ts = max(self._last_ts, ts)
        self.value = self._sum / self._weight
        return self.value

    def reset(self) -> None:
        """Forget everything (the device left and came back)."""
        self._sum = self._weight = 0.0
        self._last_ts = None
        self.value = None
