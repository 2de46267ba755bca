"""``floorwalker-agent replay``: feed a recorded log or a pcap through the agent's pipeline."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from agent.config import load_device
from agent.presence import Sighting
from agent.publisher import Publisher, unique_client_id
from agent.runtime import CountingSink, Pipeline, Sink
from agent.sources.replay import FORMATS, Reading, detect_format, read_file

TICK_S = 1.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="feed a recorded log, raw sniffer log, radiotap pcap or Brno CSV through the agent",
        description="Replay readings from FILE through the same parsing, hashing, presence and publishing as "
                    "`run`. FILE may be a recording made with `run --record`, a raw sniffer serial log, a radiotap "
                    "pcap from tcpdump/tshark on a monitor-mode Wi-Fi adapter, or the Brno probe-request CSV. "
                    "With --dry-run nothing is published; --stats prints one JSON object: records read, probe "
                    "requests, rejections by kind, distinct devices before filtering and after the passer-by filter.")
    p.add_argument("--config", required=True, metavar="DEVICE", help="device file whose presence settings to use")
    p.add_argument("file", type=Path, metavar="FILE", help="the capture to replay")
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: detect)")
    p.add_argument("--sniffer", default=None, help="sniffer id the readings are attributed to (default: the first)")
    p.add_argument("--speed", type=float, default=0.0, metavar="X",
                   help="replay X times faster than recorded, timestamps shifted to now (default 0: as fast as "
                        "possible, original timestamps)")
    p.add_argument("--dry-run", action="store_true", help="publish nothing")
    p.add_argument("--stats", action="store_true", help="print one JSON object with what was read and found")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = load_device(args.config)
    if not args.file.is_file():
        raise FileNotFoundError(str(args.file))
    sniffer = args.sniffer or (device.sniffers[0].id if device.sniffers else "s1")
    fmt = detect_format(args.file) if args.format == "auto" else args.format
    counting = CountingSink(device.agent_id)
    publisher: Publisher | None = None
    sink: Sink = counting
    if not args.dry_run:
        publisher = Publisher.for_device(device, client_id=unique_client_id(device.agent_id))
        publisher.start()
        sink = publisher
    pipeline = Pipeline(device, sink)
    rejected: Counter[str] = Counter()
    devices: set[str] = set()
    readings = 0
    last_ts: float | None = None
    try:
        started = time.time()
        first_ts: float | None = None
        next_tick = 0.0
        for reading in read_file(args.file, fmt, rejected, sniffer=sniffer):
            ts = reading.ts
            if args.speed > 0:
                first_ts = ts if first_ts is None else first_ts
                ts = started + (ts - first_ts) / args.speed
                delay = ts - time.time()
                if delay > 0:
                    time.sleep(delay)
            readings += 1
            devices.add(_feed(pipeline, reading, ts))
            if ts >= next_tick:
                pipeline.tick(ts)
                next_tick = ts + TICK_S
            last_ts = ts
        if last_ts is not None:  # the capture ended: everyone still present leaves
            pipeline.tick(last_ts + device.presence.absence_s + 1.0)
    finally:
        if publisher is not None:
            publisher.stop(flush_s=10.0)
            publisher.spool.close()
    rejected.update(pipeline.rejected)
    if args.stats:
        entered = counting.entered_devices if args.dry_run else set()
        print(json.dumps({
            "file": str(args.file), "format": fmt,
            "records_read": readings + sum(rejected.values()),
            "probe_requests": readings,
            "rejected": dict(sorted(rejected.items())),
            "devices_before_filtering": len(devices),
            "devices_after_passerby_filter": len(entered) if args.dry_run else None,
            "passers_by": pipeline.presence.stats["passers_by"],
            "weak_readings": pipeline.presence.stats["weak"],
            "fixtures_learned": pipeline.presence.stats["learned_static"],
            "messages": dict(sorted(pipeline.published.items())),
        }))
    sys.stdout.flush()
    return 0


def _feed(pipeline: Pipeline, reading: Reading, ts: float) -> str:
    """Feed one reading; returns its hashed device id (for counting distinct devices)."""
    if reading.probe is not None:
        return pipeline.probe(reading.sniffer, reading.probe, ts)
    assert reading.device is not None
    pipeline.sighting(Sighting(ts, reading.sniffer, reading.device, reading.rssi_dbm, reading.randomized))
    return reading.device
