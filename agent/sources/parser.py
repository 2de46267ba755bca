"""The sniffer line protocol (firmware-config/SNIFFER-PROTOCOL.md): JSON lines and the text form.

Parsing is the agent's hot path (tens of thousands of lines a second in the benchmark) and its
first line of defence: a sniffer at the wrong baud rate prints noise, a lost newline glues frames
together, a reboot prints a banner. Nothing here raises; every line is either a :class:`Probe` or
a rejection kind from :data:`REJECT_KINDS`, which the caller counts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import orjson

from agent.fingerprint import MAX_IE_IDS, MAX_OUIS, from_digest, from_ies, parse_id_list, parse_ie_hex

# 1,024 hex characters of IEs (agent.fingerprint.MAX_IE_HEX) plus the rest of a line fit easily.
MAX_LINE_BYTES: Final = 1536
REJECT_KINDS: Final = ("garbage", "binary", "too-long", "partial", "bad-field", "not-probe")

_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")
# Control characters other than TAB: line noise at a wrong baud rate decodes to these.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_RSSI_RE = re.compile(r"(?:^|\s)RSSI:\s*(\S+)")
_CH_RE = re.compile(r"(?:^|\s)Ch:\s*(\S+)")
_PEER_RE = re.compile(r"(?:^|\s)Peer MAC:\s*(\S+)")
_SEQ_RE = re.compile(r"(?:^|\s)Seq:\s*(\S+)")
_IE_RE = re.compile(r"(?:^|\s)IE:\s*(\S+)")


class Probe(NamedTuple):
    """One probe request as the sniffer reported it. ``mac`` is normalised (lower case, colons).

    The MAC lives only in memory, between this parser and :mod:`agent.privacy`. A named tuple, not
    a frozen dataclass: as immutable, and built in a fifth of the time (one per line)."""

    mac: str
    rssi_dbm: int
    channel: int | None = None
    seq: int | None = None  # the 802.11 sequence number, 0..4095
    fingerprint: bytes | None = None  # IE fingerprint material (agent.fingerprint), hashed before it leaves memory


def normalise_mac(value: object) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` from any case and ``:``/``-`` separators, or None when it is not a MAC."""
    if not isinstance(value, str) or len(value) != 17 or _MAC_RE.fullmatch(value) is None:
        return None
    return value.lower().replace("-", ":")


def _rssi(value: object) -> int | None:
    if type(value) is int:  # the usual case first (per line); type() is exact, so bool is not taken here
        return value if -120 <= value <= 0 else None  # type: ignore[operator]
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = round(value)
    if not isinstance(value, int) or not -120 <= value <= 0:
        return None
    return value


def _small_int(value: object, ok: Callable[[int], bool]) -> int | bool | None:
    """An integer field: None when absent, False when present but not an integer ``ok`` accepts."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return False
    if isinstance(value, bool) or not isinstance(value, int) or not ok(value):
        return False
    return value


def _channel_ok(ch: int) -> bool:
    return 1 <= ch <= 14 or 32 <= ch <= 177


def _channel(value: object) -> int | bool | None:
    """The channel: 1-14 (2.4 GHz) or 32-177 (5 GHz)."""
    if type(value) is int and _channel_ok(value):  # the usual case first (per line)
        return value
    return _small_int(value, _channel_ok)


def _seq_ok(seq: int) -> bool:
    return 0 <= seq <= 4095


def _seq(value: object) -> int | bool | None:
    """The 802.11 sequence number: 12 bits."""
    return _small_int(value, _seq_ok)


def _json_fingerprint(data: dict[str, object]) -> bytes | bool | None:
    """Fingerprint material from ``ie`` (raw IEs, hex) or ``ie_ids`` + ``ouis`` (pre-digested).

    None when the line has neither, False when a field is of the wrong type or absurd length."""
    if "ie" in data:
        ie = parse_ie_hex(data["ie"])
        return False if ie is None else from_ies(ie)
    if "ie_ids" in data:
        ids = parse_id_list(data["ie_ids"], MAX_IE_IDS, 255)
        ouis = parse_id_list(data.get("ouis", []), MAX_OUIS, 0xFFFFFF)
        if ids is None or ouis is None:
            return False
        return from_digest(ids, ouis)
    return None


def parse_line(raw: bytes) -> Probe | str:
    """A :class:`Probe`, or the rejection kind (a string from :data:`REJECT_KINDS`); ``""`` for a blank line."""
    if len(raw) > MAX_LINE_BYTES:
        return "too-long"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    text = text.rstrip("\r\n").strip(" ")
    if not text:
        return ""
    if _CONTROL_RE.search(text):
        return "binary"
    if text[0] == "{":
        return _parse_json(text)
    return _parse_text(text)


def _loads(text: str) -> Any:
    """``json.loads``, four times faster on the lines sniffers send (the agent's hottest call).

    orjson refuses what RFC 8259 refuses and the standard library takes (NaN, Infinity, 1e400,
    lone surrogates, very deep nesting): those lines go to ``json.loads``, so every line parses to
    what it did before. orjson reads integers beyond 64 bits as floats where ``json`` keeps them
    exact; no field the agent reads accepts either (tests/agent/test_parser.py)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _parse_json(text: str) -> Probe | str:
    try:
        data = _loads(text)
    except (ValueError, RecursionError):
        return "garbage" if text.endswith("}") else "partial"
    if not isinstance(data, dict):
        return "garbage"
    subtype = data.get("subtype", "ProbeReq")
    if subtype != "ProbeReq":
        return "not-probe"
    if "rssi" not in data or "addr2" not in data:
        return "partial"
    rssi = _rssi(data["rssi"])
    mac = normalise_mac(data["addr2"])
    channel = _channel(data.get("ch"))
    if rssi is None or mac is None or channel is False:
        return "bad-field"
    if "seq" not in data and "ie" not in data and "ie_ids" not in data:
        return Probe(mac, rssi, channel)  # type: ignore[arg-type]
    seq = _seq(data.get("seq"))
    fingerprint = _json_fingerprint(data)
    if seq is False or fingerprint is False:
        return "bad-field"
    return Probe(mac, rssi, channel, seq, fingerprint)  # type: ignore[arg-type]


def _parse_text(text: str) -> Probe | str:
    # The SSID runs to the end of the line and may contain anything, so fields are read before it.
    head = text.split("SSID:", 1)[0]
    rssi_m = _RSSI_RE.search(head)
    peer_m = _PEER_RE.search(head)
    if rssi_m is None and peer_m is None:
        return "garbage"
    if rssi_m is None or peer_m is None:
        return "partial"
    rssi = _rssi(rssi_m.group(1))
    mac = normalise_mac(peer_m.group(1))
    ch_m = _CH_RE.search(head)
    channel = _channel(ch_m.group(1)) if ch_m else None
    if rssi is None or mac is None or channel is False:
        return "bad-field"
    if "Seq:" not in head and "IE:" not in head:
        return Probe(mac, rssi, channel)  # type: ignore[arg-type]
    seq_m = _SEQ_RE.search(head)
    seq = _seq(seq_m.group(1)) if seq_m else None
    ie_m = _IE_RE.search(head)
    ie = parse_ie_hex(ie_m.group(1)) if ie_m else None
    if seq is False or (ie_m is not None and ie is None):
        return "bad-field"
    return Probe(mac, rssi, channel, seq, None if ie is None else from_ies(ie))  # type: ignore[arg-type]


def format_json(probe: Probe, *, ts_ms: int | None = None, ssid: str | None = None,
                ie: bytes | None = None) -> bytes:
    """A JSON line as the firmware prints it (used by the simulator and tests).

    ``ie`` is the frame's raw tagged parameters; a probe's ``fingerprint`` is derived material and
    cannot be printed back, so pass the IEs it came from."""
    data: dict[str, object] = {"rssi": probe.rssi_dbm, "subtype": "ProbeReq", "addr2": probe.mac}
    if probe.seq is not None:
        data["seq"] = probe.seq
    if ie is not None:
        data["ie"] = ie.hex()
    if ts_ms is not None:
        data["ts"] = ts_ms
    if probe.channel is not None:
        data["ch"] = probe.channel
    if ssid is not None:
        data["ssid"] = ssid
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def format_text(probe: Probe, *, ssid: str = "", ie: bytes | None = None) -> bytes:
    """The text form many ESP sniffer sketches print (``Seq:`` and ``IE:`` when known)."""
    ch = f" Ch: {probe.channel}" if probe.channel is not None else ""
    extra = f" Seq: {probe.seq}" if probe.seq is not None else ""
    extra += f" IE: {ie.hex()}" if ie is not None else ""
    return f"RSSI: {probe.rssi_dbm}{ch} Peer MAC: {probe.mac}{extra} SSID: {ssid}".rstrip().encode() + b"\n"
