"""Fuzz the serial line parser and the pcap reader: they never raise, and every rejection is counted."""

from __future__ import annotations

import io
import struct
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.sources.parser import REJECT_KINDS, Probe, parse_line
from agent.sources.pcap import read_pcap
from tests.fuzz.budget import fuzz_settings

pytestmark = pytest.mark.fuzz

MARKERS = [b"RSSI:", b"Peer MAC:", b"Ch:", b"SSID:", b"{", b"}", b'"rssi":', b'"addr2":', b'"subtype":',
           b'"ProbeReq"', b"aa:bb:cc:dd:ee:ff", b"AA-BB-CC-DD-EE-FF", b"-67", b"6", b" ", b"\r", b"\xff", b"\x00",
           b"null", b"true", b"1e999", b"-1.5", b'"', b",", b":"]

lines = st.one_of(
    st.binary(max_size=1200),
    st.lists(st.one_of(st.sampled_from(MARKERS), st.binary(max_size=4)), max_size=30).map(b"".join),
)


@fuzz_settings(1.0)
@given(lines)
def test_parser_never_raises_and_always_classifies(line: bytes) -> None:
    result = parse_line(line)
    if isinstance(result, Probe):
        assert -120 <= result.rssi_dbm <= 0
        assert len(result.mac) == 17 and result.mac == result.mac.lower()
    else:
        assert result in REJECT_KINDS or result == ""


def _pcap(records: list[bytes], linktype: int = 127) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i, rec in enumerate(records):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(rec), len(rec)) + rec
    return out


@fuzz_settings(1.0)
@given(st.binary(max_size=2000))
def test_pcap_reader_random_bytes(data: bytes) -> None:
    rejected: Counter[str] = Counter()
    frames = list(read_pcap(io.BytesIO(data), rejected))
    assert frames == [] or all(-120 <= f.probe.rssi_dbm <= 0 for f in frames)
    if not frames:
        assert sum(rejected.values()) >= 1 or len(data) >= 24  # an empty valid pcap rejects nothing


@fuzz_settings(1.0)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_pcap_reader_random_records_all_counted(records: list[bytes]) -> None:
    rejected: Counter[str] = Counter()
    frames = list(read_pcap(io.BytesIO(_pcap(records)), rejected))
    assert len(frames) + sum(rejected.values()) == len(records)


def test_pcap_reader_reads_a_probe_request() -> None:
    # radiotap: version 0, length 13, fields channel (2437 MHz = ch 6) and antenna signal (-67 dBm)
    header = bytes([0, 0, 13, 0]) + struct.pack("<I", (1 << 3) | (1 << 5)) + struct.pack("<HH", 2437, 0) + bytes([0xBD])
    frame = bytes([0x40, 0]) + b"\x00\x00" + b"\xff" * 6 + bytes.fromhex("02aabbccddee") + b"\xff" * 6 + b"\x00\x00"
    rejected: Counter[str] = Counter()
    frames = list(read_pcap(io.BytesIO(_pcap([header + frame, header + bytes([0x80]) + frame[1:]])), rejected))
    assert [(f.probe.mac, f.probe.rssi_dbm, f.probe.channel) for f in frames] == [("02:aa:bb:cc:dd:ee", -67, 6)]
    assert rejected == Counter({"not-probe": 1})
