"""The sniffer line protocol: both forms accepted, every kind of bad line rejected by kind."""

from __future__ import annotations

import pytest

from agent.sources.parser import MAX_LINE_BYTES, Probe, format_json, format_text, normalise_mac, parse_line


@pytest.mark.parametrize("line, expected", [
    (b'{"ts":123456,"ch":6,"rssi":-70,"subtype":"ProbeReq","addr2":"AA:BB:CC:DD:EE:FF","ssid":"Home"}',
     Probe("aa:bb:cc:dd:ee:ff", -70, 6)),
    (b'{"rssi":-70,"addr2":"aa-bb-cc-dd-ee-01"}\r', Probe("aa:bb:cc:dd:ee:01", -70, None)),
    (b'{"rssi":-70,"addr2":"aa:bb:cc:dd:ee:01","future_field":[1,2]}', Probe("aa:bb:cc:dd:ee:01", -70, None)),
    (b"RSSI: -67 Ch: 6 Peer MAC: aa:bb:cc:dd:ee:ff SSID: Home", Probe("aa:bb:cc:dd:ee:ff", -67, 6)),
    (b"RSSI: -67   Peer MAC: AA:BB:CC:DD:EE:FF SSID:", Probe("aa:bb:cc:dd:ee:ff", -67, None)),
    (b"RSSI: -67 Ch: 11 Peer MAC: aa:bb:cc:dd:ee:ff SSID: My Home RSSI: 5 Peer MAC: x\r\n",
     Probe("aa:bb:cc:dd:ee:ff", -67, 11)),
    (b"RSSI: -67 Ch: 36 Peer MAC: aa:bb:cc:dd:ee:ff", Probe("aa:bb:cc:dd:ee:ff", -67, 36)),
])
def test_accepted_forms(line: bytes, expected: Probe) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize("line, kind", [
    (b"ets Jan  8 2013,rst cause:2, boot mode:(3,6)", "garbage"),
    (b"hello world", "garbage"),
    (b"[1, 2, 3]", "garbage"),
    (b'{"rssi": -70, "addr2": "aa:bb', "partial"),
    (b'{"rssi": -70}', "partial"),
    (b"RSSI: -67 Ch: 6", "partial"),
    (b"Peer MAC: aa:bb:cc:dd:ee:ff", "partial"),
    (b"\xff\xfe\x00garbage", "binary"),
    (b"RSSI: -67 \x01\x02 Peer MAC: aa:bb:cc:dd:ee:ff", "binary"),
    (b"x" * (MAX_LINE_BYTES + 1), "too-long"),
    (b'{"rssi": 5, "addr2": "aa:bb:cc:dd:ee:ff"}', "bad-field"),
    (b'{"rssi": -121, "addr2": "aa:bb:cc:dd:ee:ff"}', "bad-field"),
    (b'{"rssi": true, "addr2": "aa:bb:cc:dd:ee:ff"}', "bad-field"),
    (b'{"rssi": -70, "addr2": "aa:bb:cc:dd:ee"}', "bad-field"),
    (b'{"rssi": -70, "addr2": "aa:bb-cc:dd:ee:ff"}', "bad-field"),
    (b'{"rssi": -70, "addr2": "aa:bb:cc:dd:ee:ff", "ch": 20}', "bad-field"),
    (b"RSSI: loud Peer MAC: aa:bb:cc:dd:ee:ff", "bad-field"),
    (b"RSSI: -60 Ch: 0 Peer MAC: aa:bb:cc:dd:ee:ff", "bad-field"),
    (b'{"rssi": -70, "subtype": "Beacon", "addr2": "aa:bb:cc:dd:ee:ff"}', "not-probe"),
])
def test_rejections_by_kind(line: bytes, kind: str) -> None:
    assert parse_line(line) == kind


def test_blank_line_is_neither_probe_nor_rejection() -> None:
    assert parse_line(b"\r") == ""


def test_formatters_round_trip() -> None:
    probe = Probe("02:00:5e:10:00:01", -58, 11)
    assert parse_line(format_json(probe, ts_ms=5, ssid="x").rstrip(b"\n")) == probe
    assert parse_line(format_text(probe, ssid="Cafe Wi-Fi").rstrip(b"\n")) == probe


@pytest.mark.parametrize("value, expected", [
    ("AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"), ("aabbccddeeff", None), (None, None), ("gg:bb:cc:dd:ee:ff", None),
])
def test_normalise_mac(value: object, expected: str | None) -> None:
    assert normalise_mac(value) == expected
