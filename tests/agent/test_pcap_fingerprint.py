"""Sequence numbers and IE fingerprints read from real pcap frames, checked against scapy's reading."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agent.fingerprint import from_ies
from agent.sources.pcap import parse_radiotap_frame, read_pcap

scapy_all = pytest.importorskip("scapy.all", reason="scapy is in the test extra")  # installed by tests/run.sh

PCAP = "reference/realdata/probe-requests-brno/pos1_2024-03-16.pcap"
FRAMES = 600  # scapy reads ~100 frames/s on a busy machine


def _material_from_scapy(frame: object) -> bytes:
    """The fingerprint rule of agent.fingerprint, applied to the elements as scapy parsed them."""
    parts: list[bytes] = []
    elt = frame.getlayer(scapy_all.Dot11Elt)  # type: ignore[attr-defined]
    while elt is not None and isinstance(elt, scapy_all.Dot11Elt):
        body = bytes(elt)[2:2 + elt.len]
        if elt.ID == 221:
            parts.append(b"v" + body[:4])
        elif elt.ID == 255:
            parts.append(b"x" + body[:1] + (body[1:] if body[:1] == b"\x23" else b""))
        elif elt.ID in (1, 45, 50, 127, 191):
            parts.append(b"c" + bytes([elt.ID, elt.len]) + body)
        else:
            parts.append(b"e" + bytes([elt.ID]))
        elt = elt.payload if isinstance(elt.payload, scapy_all.Dot11Elt) else None
    return b"|".join(parts)


def test_seq_and_fingerprint_match_scapy_on_the_brno_pcap(shared_dir: Path) -> None:
    path = shared_dir / PCAP
    rejected: Counter[str] = Counter()
    with open(path, "rb") as fh:
        ours = list(read_pcap(fh, rejected))
    assert len(ours) > 2000 and not rejected
    theirs = [p for p in scapy_all.rdpcap(str(path), count=FRAMES) if p.haslayer(scapy_all.Dot11ProbeReq)]
    assert len(theirs) == FRAMES  # every record of this capture is a probe request
    models = set()
    for frame, packet in zip(ours[:FRAMES], theirs, strict=True):
        dot11 = packet[scapy_all.Dot11]
        assert frame.probe.mac == dot11.addr2
        assert frame.probe.seq == dot11.SC >> 4
        assert frame.probe.rssi_dbm == packet[scapy_all.RadioTap].dBm_AntSignal
        assert frame.probe.fingerprint == _material_from_scapy(packet)
        models.add(frame.probe.fingerprint)
    assert 2 <= len(models) < FRAMES / 10  # a few device models (an empty lab that day), not one per frame


def test_fingerprint_of_a_frame_built_with_scapy() -> None:
    """A probe request written by scapy (with SSID and DS parameter) reads back through our parser."""
    dot11 = scapy_all.Dot11(type=0, subtype=4, addr1="ff:ff:ff:ff:ff:ff", addr2="da:a1:19:00:00:01",
                            addr3="ff:ff:ff:ff:ff:ff", SC=1234 << 4)
    elts = (scapy_all.Dot11Elt(ID=0, info=b"Home") / scapy_all.Dot11Elt(ID=1, info=b"\x02\x04\x0b\x16")
            / scapy_all.Dot11Elt(ID=3, info=b"\x06") / scapy_all.Dot11Elt(ID=45, info=b"\xef\x01" + b"\x00" * 24)
            / scapy_all.Dot11Elt(ID=221, info=b"\x00\x50\xf2\x08\x00\x10\x00"))
    raw = bytes(scapy_all.RadioTap(present="dBm_AntSignal", dBm_AntSignal=-61) / dot11 / scapy_all.Dot11ProbeReq()
                / elts)
    packet = scapy_all.RadioTap(raw)  # parsed back, so every length is filled in
    probe = parse_radiotap_frame(raw)
    assert not isinstance(probe, str)
    assert probe.seq == 1234 and probe.rssi_dbm == -61 and probe.mac == "da:a1:19:00:00:01"
    assert probe.fingerprint == _material_from_scapy(packet)
    assert probe.fingerprint == from_ies(bytes(elts))
