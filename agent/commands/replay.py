"""``floorwalker-agent replay``: feed a recorded log or a pcap through the agent's pipeline."""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.cliutil import number_between
from agent.config import DeviceConfig, load_device
from agent.occupancy import MinuteOccupancy, OccupancyEstimator
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
                    "requests, rejections by kind, distinct devices before and after linking random MACs, after the "
                    "passer-by filter, fixtures and neighbours. --occupancy writes the people estimate per minute.")
    p.add_argument("--config", required=True, metavar="DEVICE", help="device file whose presence settings to use")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE",
                   help="the capture(s) to replay; several files (one per sniffer, e.g. the Brno pos1 and pos2 "
                        "files of one day) are merged in time order, the i-th file heard by the i-th sniffer")
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: detect)")
    p.add_argument("--sniffer", default=None, help="sniffer id the readings are attributed to (default: the first)")
    p.add_argument("--speed", type=number_between(0), default=0.0, metavar="X",
                   help="replay X times faster than recorded, timestamps shifted to now (default 0: as fast as "
                        "possible, original timestamps)")
    p.add_argument("--dry-run", action="store_true", help="publish nothing")
    p.add_argument("--stats", action="store_true", help="print one JSON object with what was read and found")
    p.add_argument("--occupancy", type=Path, metavar="OUT.csv", default=None,
                   help="write the people estimate per minute (minute,people; the minute's ISO-8601 start in the "
                        "capture's own clock) to OUT.csv; docs/OCCUPANCY.md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = load_device(args.config)
    for path in args.files:
        if not path.is_file():
            raise FileNotFoundError(str(path))
    sniffers = _sniffer_ids(device, args.sniffer, len(args.files))
    formats = [detect_format(p) if args.format == "auto" else args.format for p in args.files]
    counting = CountingSink(device.agent_id)
    publisher: Publisher | None = None
    sink: Sink = counting
    if not args.dry_run:
        publisher = Publisher.for_device(device, client_id=unique_client_id(device.agent_id))
        publisher.start()
        sink = publisher
    pipeline = Pipeline(device, sink)
    rejected: Counter[str] = Counter()
    minutes = MinuteOccupancy(OccupancyEstimator(zones=())) if args.occupancy is not None else None
    streams = [read_file(p, f, rejected, sniffer=sn) for p, f, sn in zip(args.files, formats, sniffers, strict=True)]
    try:
        seen = _replay(pipeline, heapq.merge(*streams, key=lambda r: r.ts), args.speed, device.presence.absence_s,
                       minutes)
    finally:
        if publisher is not None:
            publisher.stop(flush_s=10.0)
            publisher.spool.close()
    if minutes is not None:
        minutes.write(args.occupancy)
    rejected.update(pipeline.rejected)
    if args.stats:
        print(json.dumps(_stats(args, formats, pipeline, counting, rejected, seen)))
    sys.stdout.flush()
    return 0


def _sniffer_ids(device: DeviceConfig, given: str | None, files: int) -> list[str]:
    """The i-th file's sniffer: the i-th configured one (``--sniffer`` names the first)."""
    configured = [s.id for s in device.sniffers] or ["s1"]
    if given is not None:
        configured[0] = given
    return [configured[i] if i < len(configured) else f"{configured[0]}-{i + 1}" for i in range(files)]


@dataclass
class _Seen:
    readings: int = 0
    macs: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    kinds: dict[str, str] = field(default_factory=dict)


def _replay(pipeline: Pipeline, readings: Iterator[Reading], speed: float, absence_s: float,
            minutes: MinuteOccupancy | None) -> _Seen:
    seen = _Seen()
    started = time.time()
    first_ts: float | None = None
    last_ts: float | None = None
    next_tick = 0.0
    for reading in readings:
        ts = reading.ts
        if speed > 0:
            first_ts = ts if first_ts is None else first_ts
            ts = started + (ts - first_ts) / speed
            delay = ts - time.time()
            if delay > 0:
                time.sleep(delay)
        seen.readings += 1
        sighting = _feed(pipeline, reading, ts, seen)
        if minutes is not None:
            minutes.add(sighting)
        if ts >= next_tick:
            pipeline.tick(ts)
            next_tick = ts + TICK_S
        last_ts = ts
    if last_ts is not None:  # the capture ended: everyone still present leaves
        pipeline.tick(last_ts + absence_s + 1.0)
    if minutes is not None:
        minutes.close()
    return seen


def _feed(pipeline: Pipeline, reading: Reading, ts: float, seen: _Seen) -> Sighting:
    """Feed one reading; note its MAC id and pseudo-device (for the statistics)."""
    if reading.probe is not None:
        sighting = pipeline.probe(reading.sniffer, reading.probe, ts)
        seen.macs.add(pipeline.hasher.device_id(reading.probe.mac, ts))
    else:
        assert reading.device is not None
        sighting = Sighting(ts, reading.sniffer, reading.device, reading.rssi_dbm, reading.randomized)
        pipeline.sighting(sighting)
        seen.macs.add(reading.device)
    seen.devices.add(sighting.device)
    seen.kinds[sighting.device] = sighting.kind
    return sighting


def _stats(args: argparse.Namespace, formats: list[str], pipeline: Pipeline, counting: CountingSink,
           rejected: Counter[str], seen: _Seen) -> dict[str, object]:
    kinds = Counter(seen.kinds.values())
    entered = counting.entered_devices if args.dry_run else set()
    return {
        "file": str(args.files[0]) if len(args.files) == 1 else [str(p) for p in args.files],
        "format": formats[0] if len(set(formats)) == 1 else formats,
        "records_read": seen.readings + sum(rejected.values()),
        "probe_requests": seen.readings,
        "rejected": dict(sorted(rejected.items())),
        "devices_before_filtering": len(seen.macs),
        "devices_before_linking": len(seen.macs),
        "devices_after_linking": len(seen.devices),
        "devices_after_passerby_filter": len(entered) if args.dry_run else None,
        "fixtures": kinds["fixture"],
        "neighbours": kinds["neighbour"],
        "people_devices": kinds["person"],
        "passers_by": pipeline.presence.stats["passers_by"],
        "weak_readings": pipeline.presence.stats["weak"],
        "fixtures_learned": pipeline.presence.stats["learned_static"],
        "messages": dict(sorted(pipeline.published.items())),
    }
