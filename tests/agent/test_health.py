"""The health message: uptime, readings per second since the last report, rejections, spool, reconnects."""

from __future__ import annotations

from collections import Counter

from agent import contract
from agent.health import HealthMonitor


def test_rate_is_since_the_last_report_and_the_message_decodes() -> None:
    monitor = HealthMonitor("agent-1", clock=1000.0)
    first = monitor.report("agent-1:1", 1010.0, readings=50, rejected=Counter(garbage=2), spool_depth=3,
                           spool_dropped=1, serial_reconnects=2)
    assert (first.uptime_s, first.readings_per_s, first.rejected) == (10.0, 5.0, {"garbage": 2})
    second = monitor.report("agent-1:2", 1030.0, readings=50, rejected=Counter(garbage=2), spool_depth=0,
                            spool_dropped=1, serial_reconnects=2)
    assert second.readings_per_s == 0.0  # a sniffer that went quiet shows 0
    topic = contract.agent_topic("demo", "agent-1", "health")
    assert contract.decode_agent(topic, contract.encode_agent(first)) == first
