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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Final, NamedTuple

import orjson

from agent.privacy import contains_mac

try:  # the usual report's checks compiled (agent/_presence.c); optional, see presence_fields
    from agent import _presence as _native_presence
except ImportError:
    _native_presence = None

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


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def _num(d: Mapping[str, Any], key: str, *, optional: bool = False, default: float | None = None) -> Any:
    v = d.get(key)
    if type(v) is float and v - v == 0.0:  # the common case, first: a finite float (inf - inf is nan)
        return v
    return _num_checked(d, key, optional, default)


def _num_checked(d: Mapping[str, Any], key: str, optional: bool, default: float | None) -> Any:
    if key not in d or d[key] is None:
        if optional:
            return default
        raise _Invalid("missing-field", key)
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Invalid("wrong-type", f"{key} must be a number")
    if not math.isfinite(v):
        raise _Invalid("wrong-type", f"{key} must be finite")
    return float(v)


def _text(d: Mapping[str, Any], key: str, *, optional: bool = False, max_len: int = 128) -> Any:
    v = d.get(key)
    if type(v) is str and 0 < len(v) <= max_len:  # the common case, first
        return v
    return _text_checked(d, key, optional, max_len)


def _text_checked(d: Mapping[str, Any], key: str, optional: bool, max_len: int) -> Any:
    if key not in d or d[key] is None:
        if optional:
            return None
        raise _Invalid("missing-field", key)
    v = d[key]
    if not isinstance(v, str):
        raise _Invalid("wrong-type", f"{key} must be a string")
    if not v or len(v) > max_len:
        raise _Invalid("bad-value", f"{key} must be 1..{max_len} characters")
    return v


def _loose_id(d: Mapping[str, Any], key: str) -> str:
    """Seed 000's services sent ids as strings, integers or floats; its UI accepted all three."""
    if key not in d or d[key] is None:
        raise _Invalid("missing-field", key)
    v = d[key]
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

    A named tuple rather than a frozen dataclass like the other kinds: as immutable, and the
    aggregator builds one per message at ingest rates (0.6 µs here against 4 µs)."""

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


DEVICE_KINDS: Final = ("person", "fixture", "neighbour")
MAX_LINKED_MACS: Final = 1_000_000
MAX_MAC_IDS: Final = 8  # agents send agent.linking.RECENT_MACS (4); room for a later agent to send more


@dataclass(frozen=True, slots=True)
class Motion:
    """A PIR sensor bound to a zone changed state (``active`` true: motion seen)."""

    kind: ClassVar[str] = "motion"
    msg_id: str
    agent: str
    ts: float
    sensor: str
    zone: str
    active: bool


@dataclass(frozen=True, slots=True)
class Door:
    """One person crossed the doorway beams: ``direction`` is ``in`` or ``out``."""

    kind: ClassVar[str] = "door"
    msg_id: str
    agent: str
    ts: float
    sensor: str
    direction: str


@dataclass(frozen=True, slots=True)
class Link:
    """A hashed device belongs to a loyalty customer (from a loyalty app, or a mock shopper)."""

    kind: ClassVar[str] = "link"
    msg_id: str
    agent: str
    ts: float
    device: str
    customer_id: str


@dataclass(frozen=True, slots=True)
class Health:
    """Periodic health of an agent: enough to tell from the map whether a sensor is sick."""

    kind: ClassVar[str] = "health"
    msg_id: str
    agent: str
    ts: float
    uptime_s: float
    readings_per_s: float
    spool_depth: int
    spool_dropped: int = 0
    serial_reconnects: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Status:
    """Retained availability; the broker publishes the ``offline`` one as the agent's last will."""

    kind: ClassVar[str] = "status"
    agent: str
    state: str
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


def _common(d: Mapping[str, Any], agent_from_topic: str | None) -> tuple[str, str, float]:
    msg_id = _text(d, "msg_id", max_len=160)
    agent = _text(d, "agent")
    if agent_from_topic is not None and agent != agent_from_topic:
        raise _Invalid("agent-mismatch", f"payload agent {agent!r} published under agent {agent_from_topic!r}")
    ts = _num(d, "ts")
    if ts <= 0:
        raise _Invalid("bad-value", "ts must be epoch seconds")
    return msg_id, agent, ts


def _ranges(d: Mapping[str, Any]) -> tuple[Range, ...]:
    raw = d.get("ranges")
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > 32:
        raise _Invalid("wrong-type", "ranges must be a list of at most 32 objects")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise _Invalid("wrong-type", "ranges must hold objects")
        dist = _num(item, "distance_m")
        if dist < 0:
            raise _Invalid("bad-value", "ranges.distance_m must be >= 0")
        out.append(Range(_text(item, "sniffer"), _num(item, "x"), _num(item, "y"), _num(item, "rssi_dbm"), dist))
    return tuple(out)


def _device(d: Mapping[str, Any]) -> str:
    """The hashed device id; a raw MAC here means an agent (or an impostor) leaked one."""
    device = _text(d, "device")
    if contains_mac(device):
        raise _Invalid("raw-mac", "device must be the agent's keyed hash, not a MAC")
    return device


def _device_kind_macs(d: Mapping[str, Any]) -> tuple[str, int, tuple[str, ...]]:
    """The optional ``kind``, ``macs`` and ``mac_ids`` of a presence report, defaults when absent."""
    device_kind = d.get("kind", "person")
    if device_kind is None:
        device_kind = "person"
    if not isinstance(device_kind, str):
        raise _Invalid("wrong-type", "kind must be a string")
    if device_kind not in DEVICE_KINDS:
        raise _Invalid("bad-value", f"kind must be one of {', '.join(DEVICE_KINDS)}")
    macs = d.get("macs", 1)
    if macs is None:
        macs = 1
    if isinstance(macs, bool) or not isinstance(macs, int):
        raise _Invalid("wrong-type", "macs must be an integer")
    if not 1 <= macs <= MAX_LINKED_MACS:
        raise _Invalid("bad-value", f"macs must be 1..{MAX_LINKED_MACS}")
    return device_kind, macs, _mac_ids(d)


def _mac_ids(d: Mapping[str, Any]) -> tuple[str, ...]:
    """``mac_ids``: a short list of keyed-hash ids; a raw MAC among them is a leak and is refused."""
    raw = d.get("mac_ids")
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_MAC_IDS:
        raise _Invalid("wrong-type", f"mac_ids must be a list of at most {MAX_MAC_IDS} strings")
    for item in raw:
        if not isinstance(item, str) or not 0 < len(item) <= 128:
            raise _Invalid("wrong-type", "mac_ids must hold non-empty strings of at most 128 characters")
        if contains_mac(item):
            raise _Invalid("raw-mac", "mac_ids must be the agent's keyed hashes, not MACs")
    return tuple(raw)


def _decode_agent(kind: str, d: dict[str, Any], agent: str | None) -> AgentMessage:
    if kind == "status":
        a = _text(d, "agent")
        if agent is not None and a != agent:
            raise _Invalid("agent-mismatch", f"payload agent {a!r} published under agent {agent!r}")
        state = _text(d, "state")
        if state not in ("online", "offline"):
            raise _Invalid("bad-value", "state must be online or offline")
        return Status(agent=a, state=state, ts=_num(d, "ts", optional=True))
    msg_id, a, ts = _common(d, agent)
    if kind in PRESENCE_KINDS:
        accuracy = _num(d, "accuracy_m")
        distance = _num(d, "distance_m")
        if accuracy < 0 or distance < 0:
            raise _Invalid("bad-value", "accuracy_m and distance_m must be >= 0")
        randomized = d.get("randomized", False)
        if not isinstance(randomized, bool):
            raise _Invalid("wrong-type", "randomized must be true or false")
        return Presence(kind, msg_id, a, ts, _device(d), _num(d, "x"), _num(d, "y"), accuracy,
                        _num(d, "rssi_dbm"), distance, randomized, _ranges(d), *_device_kind_macs(d))
    if kind == "motion":
        active = d.get("active")
        if not isinstance(active, bool):
            raise _Invalid("wrong-type" if "active" in d else "missing-field", "active must be true or false")
        return Motion(msg_id, a, ts, _text(d, "sensor"), _text(d, "zone"), active)
    if kind == "door":
        direction = _text(d, "direction")
        if direction not in ("in", "out"):
            raise _Invalid("bad-value", "direction must be in or out")
        return Door(msg_id, a, ts, _text(d, "sensor"), direction)
    if kind == "link":
        return Link(msg_id, a, ts, _device(d), _loose_id(d, "customer_id"))
    if kind == "health":
        rejected = d.get("rejected", {})
        if not isinstance(rejected, dict) or len(rejected) > 64 or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in rejected.items()):
            raise _Invalid("wrong-type", "rejected must map reasons to integers")
        return Health(msg_id, a, ts, _num(d, "uptime_s"), _num(d, "readings_per_s"),
                      int(_num(d, "spool_depth")), int(_num(d, "spool_dropped", optional=True, default=0)),
                      int(_num(d, "serial_reconnects", optional=True, default=0)), dict(rejected))
    raise _Invalid("unknown-kind", kind)


def presence_fields(topic: str, payload: bytes | str) -> tuple[Any, ...] | None:
    """A presence report's fields as plain values when it is well formed as agents write it, else None.

    :class:`Presence`'s fields in order, its ranges as plain tuples in :class:`Range`'s order (what
    the aggregator's MQTT process hands over). None means "ask :func:`decode_agent`", which gives
    the message or the precise rejection: this only ever accepts what ``decode_agent`` accepts,
    with the same values (tests/test_contract.py). The checks are in C (``agent/_presence.c``);
    where that was not built, every report goes to ``decode_agent``."""
    if _native_presence is None or len(payload) > MAX_PAYLOAD_BYTES:
        return None
    parsed = parse_agent_topic(topic)
    if parsed is None or parsed[2] not in PRESENCE_KINDS:
        return None
    try:
        data = orjson.loads(payload)
    except (ValueError, RecursionError):
        return None
    fields = _native_presence.fields(parsed[2], data, parsed[1], contains_mac)
    if fields is None:
        return None
    # kind, macs, mac_ids (optional, newer agents): checked here, three lookups; a bad one is decode_agent's to reject
    if "kind" not in data and "macs" not in data and "mac_ids" not in data:
        return (*fields, "person", 1, ())  # type: ignore[no-any-return]
    try:
        return (*fields, *_device_kind_macs(data))  # type: ignore[no-any-return]
    except _Invalid:
        return None


def decode_agent(topic: str, payload: bytes | str) -> AgentMessage | Rejection:
    """Decode an agent-tier message; the topic decides the kind and must agree with the payload."""
    parsed = parse_agent_topic(topic)
    if parsed is None:
        return Rejection("bad-topic", topic[:200])
    _, agent, kind = parsed
    try:
        return _decode_agent(kind, _load(payload), agent)
    except _Invalid as exc:
        return Rejection(exc.reason, exc.detail)


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
