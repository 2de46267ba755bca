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

from agent.fingerprint import MAX_IE_IDS, MAX_OUIS, from_digest, parse_id_list
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


# The Brno CSV's columns the agent reads. ``occupancy`` is the dataset's label (people in the lab):
# only the benchmark's scorer reads it, never the product, so it is not in this list.
BRNO_COLUMNS = ("datetime", "src", "rssi", "ch_freq", "seq_num", "dot11elt", "oui")


def _int_list(text: str, limit: int, top: int) -> list[int] | None:
    """``[0, 1, 50]`` (the Brno CSV's lists) -> ints; None when it is not such a list."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1].strip()
    try:
        values = [int(v) for v in inner.split(",")] if inner else []
    except ValueError:
        return None
    return parse_id_list(values, limit, top)


def _brno_probe(row: dict[str, str | None]) -> Probe | str:
    """A probe from one Brno row (only :data:`BRNO_COLUMNS` are read), or the rejection kind."""
    rssi = int(float(row["rssi"] or ""))
    mac = normalise_mac(row["src"])
    if mac is None or not -120 <= rssi <= 0:
        return "bad-field"
    freq = row.get("ch_freq") or ""
    channel = (int(freq) - 2407) // 5 if freq.isdigit() and 2412 <= int(freq) <= 2472 else None
    seq_text = (row.get("seq_num") or "").strip()
    seq = int(seq_text) if seq_text else None
    if seq is not None and not 0 <= seq <= 4095:
        return "bad-field"
    fingerprint = None
    if row.get("dot11elt"):
        ids = _int_list(row["dot11elt"] or "", MAX_IE_IDS, 255)
        ouis = _int_list(row.get("oui") or "[]", MAX_OUIS, 0xFFFFFF)
        if ids is None or ouis is None:
            return "bad-field"
        fingerprint = from_digest(ids, ouis)
    return Probe(mac, rssi, channel, seq, fingerprint)


def _read_brno(path: Path, rejected: Counter[str], sniffer: str) -> Iterator[Reading]:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh, delimiter=";")
        for row in reader:
            try:
                # The dataset's times carry no zone; read as UTC so a replay is the same on every machine.
                ts = datetime.fromisoformat(row["datetime"] or "").replace(tzinfo=UTC).timestamp()
                probe = _brno_probe({k: row.get(k) for k in BRNO_COLUMNS})
            except (ValueError, KeyError, TypeError):
                rejected["bad-record"] += 1
                continue
            if isinstance(probe, str):
                rejected[probe] += 1
                continue
            yield Reading(ts, sniffer, float(probe.rssi_dbm), probe=probe)
