"""The sniffer line protocol: both forms accepted, every kind of bad line rejected by kind."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.fingerprint import from_digest, from_ies
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


# ----------------------------------------------------------------------------- sequence number and IEs

# A probe request's tagged parameters: SSID (empty), supported rates, ext. rates, HT caps, a vendor element.
IES = bytes.fromhex("0000" "010402040b16" "32080c1218243048606c" "2d02ef01" "dd070050f2080010ff")


def test_seq_and_ies_in_both_forms() -> None:
    json_line = b'{"rssi":-61,"addr2":"da:a1:19:00:00:01","seq":1234,"ie":"' + IES.hex().encode() + b'"}'
    probe = parse_line(json_line)
    assert isinstance(probe, Probe) and probe.seq == 1234 and probe.fingerprint == from_ies(IES)
    text = parse_line(b"RSSI: -61 Ch: 6 Peer MAC: da:a1:19:00:00:01 Seq: 1234 IE: " + IES.hex().encode()
                      + b" SSID: Home")
    assert text == Probe("da:a1:19:00:00:01", -61, 6, 1234, from_ies(IES))
    assert format_json(probe, ie=IES).rstrip(b"\n") and parse_line(format_json(probe, ie=IES).rstrip(b"\n")) == probe
    assert parse_line(format_text(text, ie=IES).rstrip(b"\n")) == text


def test_pre_digested_fingerprint() -> None:
    probe = parse_line(b'{"rssi":-61,"addr2":"da:a1:19:00:00:01","seq":7,"ie_ids":[0,1,50,221],"ouis":[20722]}')
    assert isinstance(probe, Probe) and probe.fingerprint == from_digest([0, 1, 50, 221], [20722])


def test_fingerprint_ignores_ssid_and_channel_but_not_capabilities() -> None:
    home = bytes.fromhex("0004486f6d65") + IES[2:]  # SSID "Home" instead of the wildcard
    assert from_ies(home) == from_ies(IES)
    with_channel = IES + bytes.fromhex("030106")
    assert from_ies(with_channel) == from_ies(IES + bytes.fromhex("03010b"))  # DS parameter: channel 6 vs 11
    other_ht = IES.replace(bytes.fromhex("2d02ef01"), bytes.fromhex("2d02ee01"))
    assert from_ies(other_ht) != from_ies(IES)
    assert from_ies(IES + b"\x2d\x10\x01") == from_ies(IES)  # a truncated last element is left out


@pytest.mark.parametrize("extra", [
    b'"seq":4096', b'"seq":-1', b'"seq":"x"', b'"seq":1.5', b'"seq":true',
    b'"ie":"zz"', b'"ie":"abc"', b'"ie":""', b'"ie":12', b'"ie":"' + b"00" * 600 + b'"',
    b'"ie_ids":"0,1"', b'"ie_ids":[256]', b'"ie_ids":[0],"ouis":[-1]', b'"ie_ids":' + str(list(range(65))).encode(),
    b'"ie_ids":[0],"ouis":"x"',
])
def test_bad_seq_or_ie_fields_are_bad_field(extra: bytes) -> None:
    assert parse_line(b'{"rssi":-61,"addr2":"da:a1:19:00:00:01",' + extra + b"}") == "bad-field"


@pytest.mark.parametrize("line", [b"RSSI: -61 Peer MAC: da:a1:19:00:00:01 Seq: 5000",
                                  b"RSSI: -61 Peer MAC: da:a1:19:00:00:01 Seq: 7 IE: 0g"])
def test_bad_seq_or_ie_in_text_form(line: bytes) -> None:
    assert parse_line(line) == "bad-field"


_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
            | st.text(alphabet="0123456789abcdefABCDEF", max_size=80))
_JSON_VALUES = _SCALARS | st.lists(_SCALARS, max_size=8)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(["seq", "ie", "ie_ids", "ouis"]), value=_JSON_VALUES, ids=_JSON_VALUES)
def test_any_seq_or_ie_value_is_a_probe_or_a_bad_field(key: str, value: object, ids: object) -> None:
    data = {"rssi": -61, "addr2": "da:a1:19:00:00:01", key: value}
    if key == "ouis":
        data["ie_ids"] = ids
    result = parse_line(json.dumps(data).encode())
    assert result == "bad-field" or isinstance(result, Probe), result


# JSON that orjson (the parser's fast path) refuses or reads differently from the standard library:
# each line must end as it does with json.loads alone.
@pytest.mark.parametrize("line, expected", [
    (b'{"rssi":NaN,"addr2":"aa:bb:cc:dd:ee:01"}', "bad-field"),
    (b'{"rssi":-Infinity,"addr2":"aa:bb:cc:dd:ee:01"}', "bad-field"),
    (b'{"rssi":-1e400,"addr2":"aa:bb:cc:dd:ee:01"}', "bad-field"),
    (b'{"rssi":-70,"addr2":"aa:bb:cc:dd:ee:01","seq":18446744073709551616}', "bad-field"),
    (b'{"rssi":-70,"addr2":"aa:bb:cc:dd:ee:01","ch":-9223372036854775809}', "bad-field"),
    (b'{"rssi":-70,"addr2":"aa:bb:cc:dd:ee:01","ie_ids":[1,18446744073709551617]}', "bad-field"),
    (b'{"rssi":-70,"addr2":"aa:bb:cc:dd:ee:01","ssid":"\\ud800"}', Probe("aa:bb:cc:dd:ee:01", -70, None)),
    (b'{"rssi":-70,"addr2":"aa:bb:cc:dd:ee:01","x":NaN}', Probe("aa:bb:cc:dd:ee:01", -70, None)),
])
def test_json_the_fast_decoder_refuses_parses_as_the_standard_library_does(line: bytes, expected: object) -> None:
    assert parse_line(line) == expected
