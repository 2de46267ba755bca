"""The agent's periodic health message: enough to tell from the map whether a sensor Pi is sick.

Uptime, readings per second since the last report (a sniffer that went quiet shows 0), lines
rejected by kind (a sniffer at the wrong baud rate shows as ``binary``), spool depth and drops (the
uplink is down), serial reconnects (a loose USB cable).
"""

from __future__ import annotations

import time
from collections import Counter

from agent import contract


class HealthMonitor:
    """Counts what the pipeline sees; :meth:`report` builds the health message and resets the rate."""

    def __init__(self, agent_id: str, *, clock: float | None = None) -> None:
        self.agent_id = agent_id
        self.started = time.time() if clock is None else clock
        self.readings = 0
        self.rejected: Counter[str] = Counter()
        self._last_report_ts = self.started
        self._last_readings = 0

    def report(self, msg_id: str, now: float, *, readings: int, rejected: Counter[str], spool_depth: int,
               spool_dropped: int, serial_reconnects: int) -> contract.Health:
        """The health message for ``now``; ``readings`` is the running total of readings so far."""
        self.readings = readings
        self.rejected = rejected
        elapsed = max(now - self._last_report_ts, 1e-6)
        rate = (self.readings - self._last_readings) / elapsed
        self._last_report_ts, self._last_readings = now, self.readings
        return contract.Health(msg_id, self.agent_id, now, round(now - self.started, 1), round(rate, 2),
                               spool_depth, spool_dropped, serial_reconnects, dict(self.rejected))
