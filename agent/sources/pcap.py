"""Probe requests from a radiotap pcap: what ``tcpdump -i wlan0mon -w capture.pcap`` writes.

A Pi with a monitor-mode USB Wi-Fi adapter needs no ESP32: tcpdump/tshark capture probe requests
with a radiotap header carrying the RSSI. We read the classic pcap format (micro- or nanosecond,
either byte order) with link type 127 (radiotap), walk the radiotap fields up to the antenna
signal, and take the transmitter address, the sequence number and the information elements
(:mod:`agent.fingerprint`) of every probe request. Hand-written rather than scapy:
it is 100 lines, has no dependency and never raises on a damaged file (every rejection is counted).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from agent.fingerprint import from_ies
from agent.sources.parser import Probe

LINKTYPE_RADIOTAP = 127
_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
           b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
MAX_RECORD_BYTES = 262_144  # tcpdump's own snaplen ceiling: anything larger is a damaged file
# Radiotap fields before the antenna signal (bit 5): (alignment, size) for bits 0..4.
_FIELDS = ((8, 8), (1, 1), (1, 1), (2, 4), (1, 2))
PROBE_REQUEST_FC0 = 0x40  # frame control byte 0: type 0 (management), subtype 4 (probe request)
_IES_AT = 24  # a management frame's header: FC, duration, 3 addresses, sequence control
_FLAG_FCS = 0x10  # radiotap flags: the frame ends with its 4-byte FCS


@dataclass(frozen=True, slots=True)
class Frame:
    ts: float
    probe: Probe


def freq_to_channel(freq_mhz: int) -> int | None:
    if freq_mhz == 2484:
        return 14
    if 2412 <= freq_mhz <= 2472:
        return (freq_mhz - 2407) // 5
    if 5160 <= freq_mhz <= 5885:
        return (freq_mhz - 5000) // 5
    return None


def read_pcap(fh: BinaryIO, rejected: Counter[str]) -> Iterator[Frame]:
    """Yield probe requests; count every other record or damage in ``rejected`` by kind."""
    header = fh.read(24)
    if len(header) < 24 or header[:4] not in _MAGICS:
        rejected["not-pcap"] += 1
        return
    endian, unit = _MAGICS[header[:4]]
    linktype = struct.unpack(endian + "I", header[20:24])[0] & 0x0FFFFFFF
    if linktype != LINKTYPE_RADIOTAP:
        rejected["not-radiotap"] += 1
        return
    record = struct.Struct(endian + "IIII")
    while True:
        rec = fh.read(16)
        if not rec:
            return
        if len(rec) < 16:
            rejected["truncated"] += 1
            return
        sec, frac, incl, _orig = record.unpack(rec)
        if incl > MAX_RECORD_BYTES:
            rejected["truncated"] += 1
            return
        data = fh.read(incl)
        if len(data) < incl:
            rejected["truncated"] += 1
            return
        result = parse_radiotap_frame(data)
        if isinstance(result, str):
            rejected[result] += 1
        else:
            yield Frame(sec + frac * unit, result)


def parse_radiotap_frame(data: bytes) -> Probe | str:
    """A probe request from one radiotap + 802.11 record, or the rejection kind."""
    if len(data) < 8 or data[0] != 0:
        return "bad-radiotap"
    rt_len = int.from_bytes(data[2:4], "little")
    if rt_len < 8 or rt_len > len(data):
        return "bad-radiotap"
    present = int.from_bytes(data[4:8], "little")
    offset = 8
    word = present
    while word & 0x80000000:  # extended presence bitmaps follow the first one
        if offset + 4 > rt_len:
            return "bad-radiotap"
        word = int.from_bytes(data[offset:offset + 4], "little")
        offset += 4
    channel: int | None = None
    flags = 0
    for bit, (align, size) in enumerate(_FIELDS):
        if present & (1 << bit):
            offset = (offset + align - 1) // align * align
            if bit == 1 and offset + 1 <= rt_len:
                flags = data[offset]
            if bit == 3 and offset + 2 <= rt_len:
                channel = freq_to_channel(int.from_bytes(data[offset:offset + 2], "little"))
            offset += size
    if not present & (1 << 5):
        return "no-rssi"
    if offset + 1 > rt_len:
        return "bad-radiotap"
    rssi = int.from_bytes(data[offset:offset + 1], "little", signed=True)
    frame = data[rt_len:]
    if len(frame) < 16:
        return "truncated"
    if frame[0] != PROBE_REQUEST_FC0:
        return "not-probe"
    if not -120 <= rssi <= 0:
        return "bad-field"
    mac = frame[10:16].hex(":")
    if len(frame) < _IES_AT:
        return Probe(mac, rssi, channel)
    seq = int.from_bytes(frame[22:24], "little") >> 4  # sequence control: fragment number in the low 4 bits
    ies = frame[_IES_AT:-4] if flags & _FLAG_FCS else frame[_IES_AT:]
    return Probe(mac, rssi, channel, seq, from_ies(ies))
