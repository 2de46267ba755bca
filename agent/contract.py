"""The MQTT contract: every topic and every payload of both tiers, in one place.

Nothing else in Floorwalker builds a topic string or a payload dict by hand (zigbee2mqtt's
habit): the agent encodes with this module, the aggregator decodes with it, and
``docs/MQTT.md`` documents the same names with one example per topic.

Agent tier (agents -> aggregator), under ``floorwalker/<store>/agents/<agent>/<kind>``:
``enter``, ``move``, ``exit`` (a device's presence), ``motion`` (PIR), ``door`` (beam counter),
``link`` (device <-> loyalty customer), ``health`` (periodic), ``status`` (retained availability,
set by last will). Scenarios go the other way on ``floorwalker/<store>/scenario``.

Customer tier (aggregator -> anyone): seed 000's topics and shapes, so its UI keeps working.

Decoding never raises: it returns a message or a :class:`Rejection` with a reason, because a
hostile payload must be counted and dead-lettered, not crash the service.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Literal, NamedTuple, get_args

import msgspec
import orjson
from msgspec import Meta, Struct
from msgspec.structs import asdict, astuple, force_setattr

from agent.privacy import contains_mac

MAX_PAYLOAD_BYTES: Final = 16 * 1024
ROOT: Final = "floorwalker"

# ----------------------------------------------------------------------------- topics

AGENT_KINDS: Final = ("enter", "move", "exit", "motion", "door", "link", "health", "status")
PRESENCE_KINDS: Final = ("enter", "move", "exit")


def _check_segment(value: str, what: str) -> str:
    if not value or any(c in value for c in "/+#\x00") or value != value.strip():
        raise ValueError(f"{what} {value!r} cannot be part of an MQTT topic")
    return value


def agent_topic(store_id: str, agent_id: str, kind: str) -> str:
    """``floorwalker/<store>/agents/<agent>/<kind>``; refuses wildcards and unknown kinds."""
    if kind not in AGENT_KINDS:
        raise ValueError(f"unknown agent message kind {kind!r}; one of {', '.join(AGENT_KINDS)}")
    return f"{ROOT}/{_check_segment(store_id, 'store id')}/agents/{_check_segment(agent_id, 'agent id')}/{kind}"


def agent_subscription(store_id: str) -> str:
    """What the aggregator subscribes to: every agent of the store, every kind."""
    return f"{ROOT}/{_check_segment(store_id, 'store id')}/agents/+/+"


def scenario_topic(store_id: str) -> str:
    """Scenarios (paths for a named customer) that every mock agent of the store plays."""
    return f"{ROOT}/{_check_segment(store_id, 'store id')}/scenario"


# The aggregator's own retained topics (docs/MQTT.md): what dashboards and Home Assistant read.
SHOPPER_KINDS: Final = ("enter", "move", "exit", "browsing", "prediction")


def aggregator_status_topic(store_id: str) -> str:
    """Retained availability of the aggregator: ``{"state": "online"}``, ``offline`` by last will."""
    return f"{ROOT}/{_check_segment(store_id, 'store id')}/aggregator/status"


def zone_slug(zone_name: str) -> str:
    """A zone name as a topic segment: lower case, apostrophes dropped, other runs of non-alphanumerics
    one ``-`` ("Women's" -> ``womens``, "Home & Garden" -> ``home-garden``)."""
    out: list[str] = []
    for c in zone_name.lower().replace("'", "").replace("’", ""):
        if c.isascii() and c.isalnum():
            out.append(c)
        elif out and out[-1] != "-":
            out.append("-")
    slug = "".join(out).strip("-")
    if not slug:
        raise ValueError(f"zone name {zone_name!r} has no letters or digits to make a topic of")
    return slug


def occupancy_topic(store_id: str, zone: str | None = None) -> str:
    """Retained people in the store (``floorwalker/<store>/occupancy``) or in one zone (``.../<zone-slug>``)."""
    base = f"{ROOT}/{_check_segment(store_id, 'store id')}/occupancy"
    return base if zone is None else f"{base}/{zone_slug(zone)}"


def zone_occupancy_topics(store_id: str, zone_names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Each zone's retained occupancy topic, one per zone even where :func:`occupancy_topic` would give two
    zones one topic or none: two names with one slug ("Men's", "Mens") get ``-2``, ``-3`` in plan order, a
    name with no letter or digit ``zone-<n>`` (its place in the plan). The occupancy estimator publishes
    on these and Home Assistant's discovery points at them, so both must come from here."""
    topics: dict[str, str] = {}
    used: set[str] = set()
    for i, name in enumerate(zone_names, 1):
        try:
            base = occupancy_topic(store_id, name)
        except ValueError:
            base = f"{occupancy_topic(store_id)}/zone-{i}"
        topic, n = base, 1
        while topic in used:
            n += 1
            topic = f"{base}-{n}"
        used.add(topic)
        topics[name] = topic
    return topics


def visitors_today_topic(store_id: str) -> str:
    """Retained visitors counted since local midnight: ``{"ts", "date", "visitors"}``."""
    return f"{ROOT}/{_check_segment(store_id, 'store id')}/visitors/today"


def shopper_topic(store_id: str, kind: str) -> str:
    """Anonymous shoppers in the customer tier's shapes: ``floorwalker/<store>/shopper/<kind>``."""
    if kind not in SHOPPER_KINDS:
        raise ValueError(f"unknown shopper event kind {kind!r}; one of {', '.join(SHOPPER_KINDS)}")
    return f"{ROOT}/{_check_segment(store_id, 'store id')}/shopper/{kind}"


def parse_agent_topic(topic: str) -> tuple[str, str, str] | None:
    """``(store, agent, kind)`` of an agent-tier topic, or None when it is not one."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != ROOT or parts[2] != "agents" or parts[4] not in AGENT_KINDS:
        return None
    if not parts[1] or not parts[3]:
        return None
    return parts[1], parts[3], parts[4]


@dataclass(frozen=True, slots=True)
class CustomerTopics:
    """Seed 000's customer-tier topics, each overridable by its environment variable."""

    enter: str = "customer/enter"
    move: str = "customer/move"
    exit: str = "customer/exit"
    browsing: str = "customer/browsing"
    prediction: str = "customer/prediction"

    ENV: ClassVar[dict[str, str]] = {
        "enter": "ENTER_TOPIC", "move": "MOVE_TOPIC", "exit": "EXIT_TOPIC",
        "browsing": "BROWSING_TOPIC", "prediction": "COUPON_PREDICTION_TOPIC",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CustomerTopics:
        env = os.environ if environ is None else environ
        values = {}
        for name, var in cls.ENV.items():
            topic = env.get(var) or cls.__dataclass_fields__[name].default
            if any(c in topic for c in "+#"):
                raise ValueError(f"{var}={topic!r}: a topic to publish on cannot contain wildcards")
            values[name] = topic
        return cls(**values)

    def prefixed(self, prefix: str) -> CustomerTopics:
        """Every topic under ``prefix/`` (the store file's ``customer_tier.prefix``), so stores can share a broker."""
        if not prefix:
            return self
        return CustomerTopics(**{name: f"{prefix}/{getattr(self, name)}" for name in self.ENV})

    def kind_of(self, topic: str) -> str | None:
        for name in ("enter", "move", "exit", "browsing", "prediction"):
            if getattr(self, name) == topic:
                return name
        return None


# ----------------------------------------------------------------------------- rejection


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a payload was refused. ``reason`` is a short stable code, ``detail`` says more."""

    reason: str
    detail: str = ""

    def __bool__(self) -> bool:  # a rejection is falsy, so `if msg := decode(...)` reads well
        return False


class _Invalid(ValueError):  # a ValueError, so that msgspec reports one raised in a __post_init__
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# The scenario and customer-tier decoders below stay hand-written, unlike the agent tier's Structs: their
# looseness is the retail demo's, and msgspec cannot declare it. Its lax mode reads a numeric string by
# JSON's grammar where these take whatever float() reads (" 12 ", "+5", ".5", "1_000"), and a path point's
# type in any case; a Struct would need both back as hooks, beside per-field reasons (a customer that is not
# an object is missing-field, 101 points too-large) and a re-check in this order. Tried and measured (issue
# 19 item 4): 47 of the 105 cases tests/test_contract.py pins differ under plain Structs.
def _loose_id(d: Mapping[str, Any], key: str) -> str:
    """Seed 000's services sent ids as strings, integers or floats; its UI accepted all three."""
    if key not in d or d[key] is None:
        raise _Invalid("missing-field", key)
    return _loose_id_value(d[key], key)


def _loose_id_value(v: object, key: str) -> str:
    if isinstance(v, bool):
        raise _Invalid("wrong-type", f"{key} must be a string or a number")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _Invalid("wrong-type", f"{key} must be finite")
        return str(int(v)) if v.is_integer() else str(v)
    if isinstance(v, str) and 0 < len(v) <= 128:
        return v
    raise _Invalid("wrong-type", f"{key} must be a non-empty string or a number")


def _loose_num(d: Mapping[str, Any], key: str, *, optional: bool = False) -> float | None:
    """A number that the demo sometimes sent as a numeric string (``"ts": "1795435551"``)."""
    if key not in d or d[key] is None:
        if optional:
            return None
        raise _Invalid("missing-field", key)
    v = d[key]
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise _Invalid("wrong-type", f"{key} must be a number") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _Invalid("wrong-type", f"{key} must be a finite number")
    return float(v)


def _load(payload: bytes | str) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _Invalid("too-large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        # orjson: ~2 µs for a presence report where json.loads takes ~12 (measured, tests/benchmarks
        # contract); it also refuses NaN/Infinity literals and numbers that overflow a double, which
        # RFC 8259 does not allow either.
        data = orjson.loads(payload)
    except (ValueError, RecursionError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise _Invalid("not-json", str(exc)[:120]) from None
    if not isinstance(data, dict):
        raise _Invalid("not-object", f"a JSON object was expected, got {type(data).__name__}")
    return data


def _dump(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


# ----------------------------------------------------------------------------- agent tier


class Range(NamedTuple):
    """One sniffer's view of a device: where the sniffer is, and how far it thinks the device is.

    Carried so the aggregator can multilaterate across agents instead of averaging positions.
    A named tuple, like :class:`Presence`: immutable, and built in a quarter of a frozen
    dataclass's time (the aggregator decodes tens of thousands a second)."""

    sniffer: str
    x: float
    y: float
    rssi_dbm: float
    distance_m: float


class Presence(NamedTuple):
    """``enter`` / ``move`` / ``exit`` of one (hashed) device as one agent sees it.

    A named tuple rather than a Struct like the other kinds: as immutable, and the aggregator's
    processes hand it over as a plain tuple (aggregator.mqtt_process). Its wire form is
    :class:`_PresenceReport`."""

    kind: str
    msg_id: str
    agent: str
    ts: float
    device: str
    x: float
    y: float
    accuracy_m: float
    rssi_dbm: float
    distance_m: float
    randomized: bool = False
    ranges: tuple[Range, ...] = ()
    # What the agent made of the device (agent.linking, agent.presence). On the wire ``kind``;
    # here ``device_kind``, as ``kind`` already names the message (enter/move/exit).
    device_kind: str = "person"  # one of DEVICE_KINDS
    macs: int = 1  # how many MACs were linked into this pseudo-device
    # A linked chain's latest MAC ids (keyed hashes like ``device``, never MACs; at most MAX_MAC_IDS): two
    # agents that named one rotating phone after different first MACs share one of these (docs/MQTT.md).
    mac_ids: tuple[str, ...] = ()


DeviceKind = Literal["person", "fixture", "neighbour"]
DEVICE_KINDS: Final = get_args(DeviceKind)
MAX_LINKED_MACS: Final = 1_000_000
MAX_MAC_IDS: Final = 8  # agents send agent.linking.RECENT_MACS (4); room for a later agent to send more
MAX_RANGES: Final = 32

# The agent tier's payloads, declared: msgspec decodes the JSON straight into these types and checks
# each field as it goes (types, lengths, bounds); _rejection() names the stable reason of what it
# refused. JSON has no NaN or infinity, and a number beyond a double is refused as not-json, so every
# float here is finite. What a type cannot say (a MAC where a keyed hash belongs, seed 000's loose
# customer ids) is in the type's __post_init__, which msgspec runs as part of decoding.
Text = Annotated[str, Meta(min_length=1, max_length=128)]
MsgId = Annotated[str, Meta(min_length=1, max_length=160)]
EpochS = Annotated[float, Meta(gt=0)]
NonNegative = Annotated[float, Meta(ge=0)]


def _device_hash(device: str) -> None:
    """A raw MAC here means an agent (or an impostor) leaked one."""
    if contains_mac(device):
        raise _Invalid("raw-mac", "device must be the agent's keyed hash, not a MAC")


def _mac_id_hashes(mac_ids: list[str] | None) -> None:
    if mac_ids and any(map(contains_mac, mac_ids)):
        raise _Invalid("raw-mac", "mac_ids must be the agent's keyed hashes, not MACs")


def _customer_id(value: str | int | float) -> str:
    return _loose_id_value(value, "customer_id")


# what a field's type cannot say, checked after it (in __post_init__, and by _decode_refused)
_FIELD_CHECKS: Final = {"device": _device_hash, "mac_ids": _mac_id_hashes, "customer_id": _customer_id}


class _RangeReport(Struct, gc=False):
    """One of a presence report's ``ranges``: :class:`Range` on the wire."""

    sniffer: Text
    x: float
    y: float
    rssi_dbm: float
    distance_m: NonNegative


class _PresenceReport(Struct, gc=False):
    """``enter`` / ``move`` / ``exit`` as agents write it; decoded into :class:`Presence`."""

    msg_id: MsgId
    agent: Text
    ts: EpochS
    device: Text
    x: float
    y: float
    accuracy_m: NonNegative
    rssi_dbm: float
    distance_m: NonNegative
    randomized: bool = False
    ranges: Annotated[list[_RangeReport], Meta(max_length=MAX_RANGES)] | None = None
    # optional, left out at their defaults by agents (person, 1, none); null reads as absent
    kind: DeviceKind | None = None
    macs: Annotated[int, Meta(ge=1, le=MAX_LINKED_MACS)] | None = None
    mac_ids: Annotated[list[Text], Meta(max_length=MAX_MAC_IDS)] | None = None

    def __post_init__(self) -> None:
        _device_hash(self.device)
        _mac_id_hashes(self.mac_ids)


class Motion(Struct, frozen=True):
    """A PIR sensor bound to a zone changed state (``active`` true: motion seen)."""

    kind: ClassVar[str] = "motion"
    msg_id: MsgId
    agent: Text
    ts: EpochS
    sensor: Text
    zone: Text
    active: bool


class Door(Struct, frozen=True):
    """One person crossed the doorway beams: ``direction`` is ``in`` or ``out``."""

    kind: ClassVar[str] = "door"
    msg_id: MsgId
    agent: Text
    ts: EpochS
    sensor: Text
    direction: Literal["in", "out"]


class Link(Struct, frozen=True):
    """A hashed device belongs to a loyalty customer (from a loyalty app, or a mock shopper)."""

    kind: ClassVar[str] = "link"
    msg_id: MsgId
    agent: Text
    ts: EpochS
    device: Text
    # On the wire a string or a number, as seed 000's services sent ids; always a string once built.
    customer_id: str | int | float

    def __post_init__(self) -> None:
        _device_hash(self.device)
        force_setattr(self, "customer_id", _customer_id(self.customer_id))


class Health(Struct, frozen=True):
    """Periodic health of an agent: enough to tell from the map whether a sensor is sick."""

    kind: ClassVar[str] = "health"
    msg_id: MsgId
    agent: Text
    ts: EpochS
    uptime_s: float
    readings_per_s: float
    # Counts: integers once built; on the wire a float is truncated and a null optional one is 0.
    spool_depth: int | float
    spool_dropped: int | float | None = 0
    serial_reconnects: int | float | None = 0
    rejected: Annotated[dict[str, int], Meta(max_length=64)] = {}

    def __post_init__(self) -> None:
        for name in ("spool_depth", "spool_dropped", "serial_reconnects"):
            force_setattr(self, name, int(getattr(self, name) or 0))


class Status(Struct, frozen=True):
    """Retained availability; the broker publishes the ``offline`` one as the agent's last will."""

    kind: ClassVar[str] = "status"
    agent: Text
    state: Literal["online", "offline"]
    ts: float | None = None


AgentMessage = Presence | Motion | Door | Link | Health | Status


def encode_agent(message: AgentMessage) -> bytes:
    if isinstance(message, Presence):  # the hot path: built by hand, asdict() is 3x slower
        m = message
        data: dict[str, Any] = {
            "msg_id": m.msg_id, "agent": m.agent, "ts": m.ts, "device": m.device, "x": m.x, "y": m.y,
            "accuracy_m": m.accuracy_m, "rssi_dbm": m.rssi_dbm, "distance_m": m.distance_m,
            "randomized": m.randomized,
        }
        if m.ranges:
            data["ranges"] = [{"sniffer": r.sniffer, "x": r.x, "y": r.y, "rssi_dbm": r.rssi_dbm,
                               "distance_m": r.distance_m} for r in m.ranges]
        if m.device_kind != "person":  # defaults left out: reports stay as short as before
            data["kind"] = m.device_kind
        if m.macs != 1:
            data["macs"] = m.macs
        if m.mac_ids:
            data["mac_ids"] = list(m.mac_ids)
        return _dump(data)
    return _dump(asdict(message))


_DECODERS: Final = {kind: msgspec.json.Decoder(wire) for kind, wire in [
    *((k, _PresenceReport) for k in PRESENCE_KINDS), ("motion", Motion), ("door", Door),
    ("link", Link), ("health", Health), ("status", Status)]}
# null stands for an absent field (missing-field when required), except where the field is a flag or a map
_NULL_IS_WRONG_TYPE: Final = frozenset({"randomized", "active", "rejected"})
# whatever is wrong in these is wrong-type, as agents never write them otherwise
_ALWAYS_WRONG_TYPE: Final = frozenset({"mac_ids"})
_TOO_MANY: Final = re.compile(r"Expected `(array|object)` of length")  # a list or a map too long is wrong-type


def _rejection(exc: msgspec.ValidationError, field_path: str = "") -> Rejection:
    """msgspec's refusal as one of the contract's stable reasons (docs/MQTT.md); its text the detail.

    ``field_path`` (``.name``) when ``exc`` came from converting that one field's value."""
    if isinstance(exc.__cause__, _Invalid):  # raised by a __post_init__ or a field check
        return Rejection(exc.__cause__.reason, exc.__cause__.detail)
    message, at, path = str(exc).partition(" - at `$")
    if field_path:
        at, path = " - at `$", field_path + (path or "`")
    detail = f"{message}{at}{path}"
    field = path.lstrip(".").partition("`")[0].partition("[")[0].partition(".")[0]
    if message.startswith("Object missing required field"):
        reason = "missing-field"
    elif message == "Number out of range":
        reason = "not-json"  # not a double (RFC 8259), as orjson said before
    elif not at and message.startswith("Expected `object`, got"):
        reason = "not-object"
    elif field in _ALWAYS_WRONG_TYPE:
        reason = "wrong-type"
    elif message.endswith(", got `null`") and not path.endswith("]`") and field not in _NULL_IS_WRONG_TYPE:
        reason = "missing-field"  # a field's null reads as its absence (not so an item's in a list or map)
    elif ", got `" in message or _TOO_MANY.match(message):
        reason = "wrong-type"
    else:
        reason = "bad-value"  # a bound: a string's length, a number's range, one of a set
    return Rejection(reason, detail)


def _decode(kind: str, agent: str, payload: bytes | str) -> Any:
    """The payload as ``kind``'s declared type, whose agent is ``agent``; raises _Invalid."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _Invalid("too-large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        message = _DECODERS[kind].decode(payload)
    except (msgspec.DecodeError, RecursionError, UnicodeError):  # ValidationError is a DecodeError
        message = _decode_refused(kind, agent, payload)
    if message.agent != agent:
        raise _Invalid("agent-mismatch", f"payload agent {message.agent!r} published under agent {agent!r}")
    return message


# The order in which a refused payload's fields are looked at, so that one with several faults is
# counted under its first in this order, as before msgspec (whatever the order of its keys); "=agent"
# is where the payload's agent must be the topic's.
_PRESENCE_ORDER: Final = ("msg_id", "agent", "=agent", "ts", ("accuracy_m", float), ("distance_m", float),
                          "accuracy_m", "distance_m", "randomized", "device", "x", "y", "rssi_dbm", "ranges", "kind",
                          "macs", "mac_ids")  # accuracy_m and distance_m: both numbers, then both >= 0
_RANGE_ORDER: Final = ("distance_m", "sniffer", "x", "y", "rssi_dbm")
_CHECK_ORDER: Final = {
    **dict.fromkeys(PRESENCE_KINDS, _PRESENCE_ORDER),
    "motion": ("msg_id", "agent", "=agent", "ts", "active", "sensor", "zone"),
    "door": ("msg_id", "agent", "=agent", "ts", "direction", "sensor"),
    "link": ("msg_id", "agent", "=agent", "ts", "device", "customer_id"),
    "health": ("msg_id", "agent", "=agent", "ts", "rejected", "uptime_s", "readings_per_s", "spool_depth",
               "spool_dropped", "serial_reconnects"),
    "status": ("agent", "=agent", "state", "ts"),
}


def _decode_refused(kind: str, agent: str, payload: bytes | str) -> Any:
    """Why msgspec refused ``payload``: its first fault in :data:`_CHECK_ORDER`, each field checked on
    its own against its declared type; raises _Invalid. (Refusals are rare: what is accepted is decoded
    once.) Should every field pass, msgspec was stricter than the contract (an unknown field nested
    deeper than its stack): the message is built from the parsed JSON instead."""
    try:
        data = orjson.loads(payload)  # JSON as read before msgspec: what is not JSON is said first
    except (ValueError, RecursionError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise _Invalid("not-json", str(exc)[:120]) from None
    if not isinstance(data, dict):
        raise _Invalid("not-object", f"a JSON object was expected, got {type(data).__name__}")
    wire = _DECODERS[kind].type
    _check_fields(wire, data, _CHECK_ORDER[kind], agent)
    try:
        return msgspec.convert(data, wire)
    except msgspec.ValidationError as exc:
        rejection = _rejection(exc)
        raise _Invalid(rejection.reason, rejection.detail) from None


def _check_fields(wire: type[Struct], data: dict[str, Any], order: tuple[Any, ...], agent: str, at: str = "") -> None:
    """:func:`_decode_refused`'s look at each field of ``data`` in ``order``; raises _Invalid at the first fault.

    An entry ``(name, type)`` checks the field against a looser type than its own, ahead of the rest."""
    declared = {f.name: f.type for f in msgspec.structs.fields(wire)}
    required = {f.name for f in msgspec.structs.fields(wire) if f.required}
    for entry in order:
        name, expected = entry if isinstance(entry, tuple) else (entry, declared.get(entry))
        if name == "=agent":
            if data["agent"] != agent:
                raise _Invalid("agent-mismatch", f"payload agent {data['agent']!r} published under agent {agent!r}")
            continue
        value = data.get(name)
        if value is None and (name not in data or name not in _NULL_IS_WRONG_TYPE):
            if name in required:
                raise _Invalid("missing-field", f"{at}.{name}".lstrip("."))
            continue
        try:
            if name == "ranges" and type(value) is list and len(value) <= MAX_RANGES:
                for i, item in enumerate(value):  # one range after the other, each in _RANGE_ORDER
                    if type(item) is dict:
                        _check_fields(_RangeReport, item, _RANGE_ORDER, agent, f"{at}.ranges[{i}]")
                    else:
                        raise _Invalid("wrong-type", f"{at}ranges[{i}] must be an object".lstrip("."))
            _FIELD_CHECKS.get(name, _no_check)(msgspec.convert(value, expected))
        except msgspec.ValidationError as exc:
            rejection = _rejection(exc, f"{at}.{name}")
            raise _Invalid(rejection.reason, rejection.detail) from None


def _no_check(value: object) -> None:
    pass


def _presence_fields(kind: str, r: _PresenceReport, ranges: tuple[Any, ...]) -> tuple[Any, ...]:
    return (kind, r.msg_id, r.agent, r.ts, r.device, r.x, r.y, r.accuracy_m, r.rssi_dbm, r.distance_m, r.randomized,
            ranges, r.kind or "person", r.macs or 1, tuple(r.mac_ids) if r.mac_ids else ())


def presence_fields(topic: str, payload: bytes | str) -> tuple[Any, ...] | None:
    """A presence report's fields as plain values when it is well formed, else None.

    :class:`Presence`'s fields in order, its ranges as plain tuples in :class:`Range`'s order (what
    the aggregator's MQTT process hands over, without building a named tuple to take apart). None
    means "ask :func:`decode_agent`", which gives the precise rejection: this accepts exactly what
    ``decode_agent`` accepts, with the same values (tests/test_contract.py)."""
    parsed = parse_agent_topic(topic)
    if parsed is None or parsed[2] not in PRESENCE_KINDS:
        return None
    try:
        r = _decode(parsed[2], parsed[1], payload)
    except _Invalid:
        return None
    return _presence_fields(parsed[2], r, tuple([astuple(q) for q in r.ranges]) if r.ranges else ())


def decode_agent(topic: str, payload: bytes | str) -> AgentMessage | Rejection:
    """Decode an agent-tier message; the topic decides the kind and must agree with the payload."""
    parsed = parse_agent_topic(topic)
    if parsed is None:
        return Rejection("bad-topic", topic[:200])
    _, agent, kind = parsed
    try:
        message = _decode(kind, agent, payload)
    except _Invalid as exc:
        return Rejection(exc.reason, exc.detail)
    if kind in PRESENCE_KINDS:
        ranges = tuple([_new(Range, astuple(q)) for q in message.ranges]) if message.ranges else ()
        return _new(Presence, _presence_fields(kind, message, ranges))  # type: ignore[no-any-return]
    return message  # type: ignore[no-any-return]


_new = tuple.__new__


def online(agent: str, ts: float | None = None) -> Status:
    return Status(agent=agent, state="online", ts=ts)


def offline(agent: str, ts: float | None = None) -> Status:
    return Status(agent=agent, state="offline", ts=ts)


# ----------------------------------------------------------------------------- scenario


@dataclass(frozen=True, slots=True)
class ScenarioStep:
    """One point of a scenario path: ``type`` is ENTER, MOVE, FOCUS or EXIT; ``timestamp`` in ms."""

    type: str
    x: float
    y: float
    timestamp_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """A path for a named customer, in seed 000's scenario JSON."""

    customer_id: str
    path: tuple[ScenarioStep, ...]
    step_s: float = 5.0


MAX_SCENARIO_POINTS: Final = 100
STEP_S_MIN: Final = 1.0  # seed 000's step-time slider
STEP_S_MAX: Final = 15.0


def decode_scenario(payload: bytes | str | Mapping[str, Any]) -> Scenario | Rejection:
    """Seed 000's ``{"customer": {"customer_id"}, "path": [{"type", "location": {x, y}, "timestamp"}]}``."""
    try:
        d = payload if isinstance(payload, Mapping) else _load(payload)
        customer = d.get("customer")
        if not isinstance(customer, dict):
            raise _Invalid("missing-field", "customer")
        cid = _loose_id(customer, "customer_id")
        path = d.get("path")
        if not isinstance(path, list) or not path:
            raise _Invalid("missing-field", "path must be a non-empty list")
        if len(path) > MAX_SCENARIO_POINTS:
            raise _Invalid("too-large", f"at most {MAX_SCENARIO_POINTS} points")
        steps = []
        for item in path:
            if not isinstance(item, dict) or not isinstance(item.get("location"), dict):
                raise _Invalid("wrong-type", "path items need a location {x, y}")
            kind = str(item.get("type", "MOVE")).upper()
            if kind not in ("ENTER", "MOVE", "FOCUS", "EXIT"):
                raise _Invalid("bad-value", f"path type {kind!r} is not ENTER, MOVE, FOCUS or EXIT")
            loc = item["location"]
            steps.append(ScenarioStep(kind, _loose_num(loc, "x"), _loose_num(loc, "y"),
                                      _loose_num(item, "timestamp", optional=True)))
        step_s = _loose_num(d, "step_s", optional=True) or 5.0
        if not STEP_S_MIN <= step_s <= STEP_S_MAX:
            raise _Invalid("bad-value", f"step_s must be {STEP_S_MIN:g}..{STEP_S_MAX:g} seconds")
        return Scenario(cid, tuple(steps), step_s)
    except _Invalid as exc:
        return Rejection(exc.reason, exc.detail)


def encode_scenario(scenario: Scenario) -> bytes:
    path = []
    for s in scenario.path:
        item: dict[str, Any] = {"type": s.type, "location": {"x": s.x, "y": s.y}}
        if s.timestamp_ms is not None:
            item["timestamp"] = s.timestamp_ms
        path.append(item)
    return _dump({"customer": {"customer_id": scenario.customer_id}, "path": path, "step_s": scenario.step_s})


# ----------------------------------------------------------------------------- occupancy (aggregator -> anyone)


def _people(estimate: float, sigma: float) -> dict[str, Any]:
    return {"people": max(0, round(estimate)), "estimate": round(max(0.0, estimate), 2), "sigma": round(sigma, 2)}


def occupancy_payload(ts: float, estimate: float, sigma: float,
                      zones: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    """The store topic's document: ``people`` the rounded estimate, ``zones`` by name, each the same shape."""
    return {"ts": round(ts, 3), **_people(estimate, sigma),
            "zones": {name: _people(e, s) for name, (e, s) in zones.items()}}


def encode_occupancy(ts: float, estimate: float, sigma: float, zones: Mapping[str, tuple[float, float]]) -> bytes:
    """``floorwalker/<store>/occupancy``: ``{"ts", "people", "estimate", "sigma", "zones": {...}}``."""
    return _dump(occupancy_payload(ts, estimate, sigma, zones))


def encode_zone_occupancy(ts: float, estimate: float, sigma: float) -> bytes:
    """``floorwalker/<store>/occupancy/<zone-slug>``: ``{"ts", "people", "estimate", "sigma"}``."""
    return _dump({"ts": round(ts, 3), **_people(estimate, sigma)})


# ----------------------------------------------------------------------------- customer tier


@dataclass(frozen=True, slots=True)
class CustomerEvent:
    """Seed 000's customer-tier event. ``kind`` is enter, move, exit or browsing.

    Emitted with integer ``ts``/``x``/``y``; decoded from whatever the demo's services sent."""

    kind: str
    id: str | int  # encoded as given: an int is a known customer's id, typed as the retail demo types it
    ts: float
    x: float | None = None
    y: float | None = None
    dep: str | None = None


@dataclass(frozen=True, slots=True)
class Prediction:
    """``{"customer": {"id"}, "coupon": {...seed-000 coupon...}, "ts"}``."""

    customer_id: str | int  # an int for the retail demo's own consumers (customer_tier)
    coupon: dict[str, Any]
    ts: float


def encode_customer(event: CustomerEvent, **extra: Any) -> bytes:
    data: dict[str, Any] = {"id": event.id, "ts": int(event.ts)}
    if event.kind in ("move", "browsing") and event.x is not None and event.y is not None:
        data["x"] = round(event.x)
        data["y"] = round(event.y)
    if event.kind == "browsing":
        data["dep"] = event.dep or "Unknown"
    if extra:
        data.update(extra)
        return _dump(data)
    try:
        # ints and strings only: orjson writes exactly what _dump does (compact, UTF-8, same
        # escapes), at a fifth of the cost, once per published move
        return orjson.dumps(data)
    except orjson.JSONEncodeError:  # an int beyond 64 bits (a position gone astray): the general path
        return _dump(data)


def encode_prediction(prediction: Prediction, **extra: Any) -> bytes:
    coupon = dict(prediction.coupon)
    # The demo's recommendation service emitted how_many_products_required where its UI read how_many.
    if "how_many" not in coupon and "how_many_products_required" in coupon:
        coupon["how_many"] = coupon["how_many_products_required"]
    data = {"customer": {"id": prediction.customer_id}, "coupon": coupon, "ts": int(prediction.ts)}
    data.update(extra)
    return _dump(data)


def decode_customer(kind: str, payload: bytes | str) -> CustomerEvent | Prediction | Rejection:
    """Decode a customer-tier message of ``kind`` (enter, move, exit, browsing, prediction)."""
    try:
        d = _load(payload)
        if kind == "prediction":
            customer = d.get("customer")
            coupon = d.get("coupon")
            if not isinstance(customer, dict):
                raise _Invalid("missing-field", "customer")
            if not isinstance(coupon, dict):
                raise _Invalid("missing-field", "coupon")
            return Prediction(_loose_id(customer, "id"), coupon, _loose_num(d, "ts") or 0.0)
        if kind not in ("enter", "move", "exit", "browsing"):
            raise _Invalid("unknown-kind", kind)
        cid = _loose_id(d, "id")
        ts = _loose_num(d, "ts")
        x = _loose_num(d, "x", optional=kind != "move")
        y = _loose_num(d, "y", optional=kind != "move")
        dep = d.get("dep")
        if dep is not None and not isinstance(dep, str):
            raise _Invalid("wrong-type", "dep must be a string")
        return CustomerEvent(kind, cid, ts or 0.0, x, y, dep)
    except _Invalid as exc:
        return Rejection(exc.reason, exc.detail)
