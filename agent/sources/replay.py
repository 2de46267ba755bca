"""Readings from files: recorded agent logs, raw serial captures, radiotap pcaps, the Brno CSV.

Every reader yields :class:`Reading` in time order and counts what it rejects, so ``replay`` can
feed the same presence and publishing code a live agent runs, or just print statistics.

* **recording** — what ``run --record FILE`` writes: one JSON object per line with the device id
  already hashed (``{"ts", "sniffer", "device", "randomized", "rssi", "ch"}``). No MAC, ever.
* **serial** — raw sniffer lines (either protocol form), e.g. ``cat /dev/ttyUSB0 > log``; no
  timestamps, so lines are spaced ``line_gap_s`` apart from the file's modification time backwards.
* **pcap** — radiotap pcap (:mod:`agent.sources.pcap`).
* **brno** — the Brno probe-request dataset's CSV (``datetime;dst;src;...;randomized;rssi;...``).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.sources.parser import Probe, normalise_mac, parse_line
from agent.sources.pcap import read_pcap

FORMATS = ("auto", "recording", "serial", "pcap", "brno")


@dataclass(frozen=True, slots=True)
class Reading:
    """One heard frame: either a raw ``probe`` (MAC, still to be hashed) or an already hashed ``device``."""

    ts: float
    sniffer: str
    rssi_dbm: float
    probe: Probe | None = None
    device: str | None = None
    randomized: bool = False


def detect_format(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        return "pcap"
    if head.startswith(b"datetime;"):
        return "brno"
    first = head.split(b"\n", 1)[0]
    if first.startswith(b"{") and b'"device"' in first:
        return "recording"
    return "serial"


def read_file(path: Path, fmt: str, rejected: Counter[str], *, sniffer: str = "s1",
              line_gap_s: float = 0.01) -> Iterator[Reading]:
    """Readings of ``path`` in format ``fmt`` (``auto`` detects it)."""
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "pcap":
        with open(path, "rb") as fh:
            for frame in read_pcap(fh, rejected):
                yield Reading(frame.ts, sniffer, float(frame.probe.rssi_dbm), probe=frame.probe)
    elif fmt == "brno":
        yield from _read_brno(path, rejected, sniffer)
    elif fmt == "recording":
        yield from _read_recording(path, rejected)
    elif fmt == "serial":
        yield from _read_serial(path, rejected, sniffer, line_gap_s)
    else:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def _read_serial(path: Path, rejected: Counter[str], sniffer: str, gap_s: float) -> Iterator[Reading]:
    with open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    start = path.stat().st_mtime - gap_s * len(lines)
    for i, line in enumerate(lines):
        result = parse_line(line)
        if isinstance(result, str):
            if result:
                rejected[result] += 1
            continue
        yield Reading(start + i * gap_s, sniffer, float(result.rssi_dbm), probe=result)


def _read_recording(path: Path, rejected: Counter[str]) -> Iterator[Reading]:
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                ts, rssi = float(d["ts"]), float(d["rssi"])
                device, sniffer = d["device"], str(d.get("sniffer", "s1"))
                if not (isinstance(device, str) and device and math.isfinite(ts) and -120 <= rssi <= 0):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                rejected["bad-record"] += 1
                continue
            yield Reading(ts, sniffer, rssi, device=device, randomized=bool(d.get("randomized", False)))


def _read_brno(path: Path, rejected: Counter[str], sniffer: str) -> Iterator[Reading]:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh, delimiter=";")
        for row in reader:
            try:
                # The dataset's times carry no zone; read as UTC so a replay is the same on every machine.
                ts = datetime.fromisoformat(row["datetime"]).replace(tzinfo=UTC).timestamp()
                rssi = int(float(row["rssi"]))
                mac = normalise_mac(row["src"])
                freq = row.get("ch_freq") or ""
            except (ValueError, KeyError, TypeError):
                rejected["bad-record"] += 1
                continue
            if mac is None or not -120 <= rssi <= 0:
                rejected["bad-field"] += 1
                continue
            channel = (int(freq) - 2407) // 5 if freq.isdigit() and 2412 <= int(freq) <= 2472 else None
            yield Reading(ts, sniffer, float(rssi), probe=Probe(mac, rssi, channel))
