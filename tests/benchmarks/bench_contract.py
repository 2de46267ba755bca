"""Encode/decode speed of the MQTT contract: the floor under every ingest figure."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

from agent import contract as c
from tests.benchmarks.figures import Figure


def run(args: argparse.Namespace) -> Iterator[Figure]:
    n = 20_000 if args.quick else 200_000
    topic = c.agent_topic("demo", "agent-1", "move")
    msg = c.Presence("move", "agent-1:1", "agent-1", 1795435593.25, "d-4f2a9c0011", 700.5, 300.0, 2.5, -67.0, 3.1,
                     False, (c.Range("s1", 600.0, 330.0, -67.0, 3.1),))
    start = time.perf_counter()
    for _ in range(n):
        payload = c.encode_agent(msg)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        c.decode_agent(topic, payload)
    decode_s = time.perf_counter() - start
    yield Figure("contract.encode_per_s", round(n / encode_s), "msg/s")
    yield Figure("contract.decode_per_s", round(n / decode_s), "msg/s", target=">= 20000")
