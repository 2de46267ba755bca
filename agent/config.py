"""Store and device configuration: loaded and validated once, at start-up.

Files are TOML (comments allowed, ``tomllib`` in the standard library). A wrong file stops
start-up with one line naming the file, the field and what was expected (zigbee2mqtt's habit):
an unknown key, a wrong type, a polygon with fewer than 3 points, a sniffer outside the plan, a
calibration table whose RSSI does not fall with distance, a duplicate agent id.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from agent.errors import BadCalibration, ConfigError
from agent.geometry import Plan, Point, Zone, polygon_area

SECRET_PLACEHOLDER = "CHANGE-ME"
_MISSING = object()


def default_config_dir() -> Path:
    """``$FLOORWALKER_CONFIG_DIR``, else ``./firmware-config``, else the one beside the packages."""
    env = os.environ.get("FLOORWALKER_CONFIG_DIR")
    if env:
        return Path(env)
    here = Path.cwd() / "firmware-config"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "firmware-config"


def default_state_dir() -> Path:
    """Where spools and databases go unless a file says otherwise."""
    return Path(os.environ.get("FLOORWALKER_STATE_DIR", "var"))


class _Section:
    """A TOML table being read: remembers its file and dotted path, and which keys were used."""

    def __init__(self, data: Any, file: Path, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(str(file), path or "(top level)", "a table")
        self.data = data
        self.file = file
        self.path = path
        self.used: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, expected: str) -> ConfigError:
        return ConfigError(str(self.file), self.name(key), expected)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING, what: str = "") -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise self.error(key, f"required, {what or _kind_name(kind)}")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(key, f"{what or _kind_name(kind)}, got {value!r}")
        if not isinstance(value, kinds):
            raise self.error(key, f"{what or _kind_name(kind)}, got {type(value).__name__} {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(key, "a finite number")
        return value

    def number(self, key: str, default: Any = _MISSING, *, min_value: float | None = None,
               max_value: float | None = None) -> float:
        value = self.get(key, float, default, "a number")
        if min_value is not None and value < min_value:
            raise self.error(key, f"a number >= {min_value}, got {value}")
        if max_value is not None and value > max_value:
            raise self.error(key, f"a number <= {max_value}, got {value}")
        return value

    def integer(self, key: str, default: Any = _MISSING, *, min_value: int | None = None,
                max_value: int | None = None) -> int:
        value = self.get(key, int, default, "an integer")
        if min_value is not None and value < min_value:
            raise self.error(key, f"an integer >= {min_value}, got {value}")
        if max_value is not None and value > max_value:
            raise self.error(key, f"an integer <= {max_value}, got {value}")
        return value

    def text(self, key: str, default: Any = _MISSING, *, non_empty: bool = False) -> str:
        value = self.get(key, str, default, "a string")
        if non_empty and not value.strip():
            raise self.error(key, "a non-empty string")
        return value

    def section(self, key: str, *, required: bool = False) -> _Section | None:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "a table")
            return None
        return _Section(self.data[key], self.file, self.name(key))

    def sections(self, key: str) -> list[_Section]:
        """An array of tables (``[[key]]``); missing means empty."""
        self.used.add(key)
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self.error(key, "an array of tables ([[" + key + "]])")
        return [_Section(item, self.file, f"{self.name(key)}[{i}]") for i, item in enumerate(value)]

    def point(self, key: str, plan: Plan | None = None) -> Point:
        value = self.get(key, list, what="a point [x, y]")
        return _point(value, self, key, plan)

    def finish(self) -> None:
        """Reject keys nobody asked for: a typo must not be silently ignored."""
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            known = ", ".join(sorted(self.used)) or "none"
            raise self.error(unknown[0], f"unknown key (known keys here: {known})")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "an array", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _point(value: Any, sec: _Section, key: str, plan: Plan | None = None) -> Point:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not all(math.isfinite(v) for v in value)):
        raise sec.error(key, f"a point [x, y] of two numbers, got {value!r}")
    p = (float(value[0]), float(value[1]))
    if plan is not None and not plan.contains(p):
        raise sec.error(key, f"a point inside the plan (0..{plan.width_px}, 0..{plan.height_px}), got {value!r}")
    return p


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(str(path), "(file)", "an existing file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "(syntax)", f"valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "(encoding)", f"UTF-8 text (byte {exc.start} is not)") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "(file)", "a file, not a directory") from None


# --------------------------------------------------------------------------- store


@dataclass(frozen=True, slots=True)
class ChainShipping:
    """The store file's ``[chain]`` table: where closed visits are shipped for chain analytics (docs/DATA.md)."""

    directory: Path
    key: str  # keys the HMAC that re-keys visitor ids per chain (FLOORWALKER_CHAIN_KEY overrides)
    interval_s: float = 60.0
    batch_rows: int = 20_000


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """One store: its plan, zones, doors, time zone, hashing secret and data files."""

    path: Path
    id: str
    name: str
    timezone: str
    secret: str
    rotate_daily: bool
    plan: Plan
    entrance: Point
    exit: Point
    background_image: Path | None
    customers_file: Path
    coupons_file: Path
    offers_file: Path
    # Integrations (docs/MQTT.md, docs/ALERTS.md): optional tables, parsed by _integrations below.
    home_assistant: HomeAssistantConfig = field(default_factory=lambda: HomeAssistantConfig())
    customer_tier: CustomerTierConfig = field(default_factory=lambda: CustomerTierConfig())
    alerts: AlertsConfig = field(default_factory=lambda: AlertsConfig())
    chain: ChainShipping | None = None  # None: this store ships nothing to a chain (the default)
    # People per device heard (docs/OCCUPANCY.md), from `floorwalker-aggregator calibrate-factor`; None: the
    # estimator's default, fitted in the Brno lab.
    occupancy_factor: float | None = None

    @property
    def secret_is_placeholder(self) -> bool:
        return self.secret.startswith(SECRET_PLACEHOLDER)


def load_store(path: str | os.PathLike[str]) -> StoreConfig:
    path = Path(path)
    root = _Section(_load_toml(path), path, "")
    store = root.section("store", required=True)
    assert store is not None
    store_id = store.text("id", non_empty=True)
    if not all(c.isalnum() or c in "-_" for c in store_id):
        raise store.error("id", f"letters, digits, '-' or '_' only (it is part of MQTT topics), got {store_id!r}")
    timezone = store.text("timezone", "UTC", non_empty=True)
    _check_timezone(timezone, store)
    env_secret = os.environ.get("FLOORWALKER_STORE_SECRET")
    # Read the key even when the environment overrides it, so it is not refused as an unknown key.
    file_secret = store.text("secret", "" if env_secret else _MISSING, non_empty=not env_secret)
    secret = env_secret or file_secret
    if env_secret and len(env_secret) < 16:
        raise ConfigError("environment", "FLOORWALKER_STORE_SECRET", "at least 16 characters (it keys the device-id "
                          f"hash and overrides {path.name}'s secret), got {len(env_secret)}")
    if len(secret) < 16:
        raise store.error("secret", "at least 16 characters (it keys the device-id hash)")
    plan_base = Plan(
        width_px=store.integer("plan_width_px", min_value=1),
        height_px=store.integer("plan_height_px", min_value=1),
        metres_per_px=store.number("metres_per_px", min_value=1e-6),
    )
    zones = tuple(_zone(sec, plan_base) for sec in root.sections("zones"))
    if not zones:
        raise root.error("zones", "at least one [[zones]] table")
    names = [z.name for z in zones]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(str(path), f"zones[{i}].name", f"a unique zone name, {name!r} is declared twice")
    plan = Plan(plan_base.width_px, plan_base.height_px, plan_base.metres_per_px, zones)
    background = store.text("background_image", "")
    config = StoreConfig(
        path=path,
        id=store_id,
        name=store.text("name", store_id),
        timezone=timezone,
        secret=secret,
        rotate_daily=store.get("rotate_ids_daily", bool, False),
        plan=plan,
        entrance=store.point("entrance", plan),
        exit=store.point("exit", plan),
        background_image=_relative_file(path, background, store, "background_image") if background else None,
        customers_file=_data_file(path, store, "customers_file", "CUSTOMERS_LIST_FILE", "customers.json"),
        coupons_file=_data_file(path, store, "coupons_file", "COUPONS_LIST_FILE", "coupons.json"),
        offers_file=_data_file(path, store, "offers_file", "OFFERS_FILE", "offers.toml"),
        **_integrations(root, zones=names),
        chain=_chain(root.section("chain"), path),
        occupancy_factor=_occupancy_factor(store),
    )
    store.finish()
    root.finish()
    return config


# The range a people-per-device factor can take: below, nine in ten devices heard would be nobody's; above,
# most people would carry no device that probes. Outside it the calibration or the key is wrong.
OCCUPANCY_FACTOR_RANGE = (0.1, 10.0)


def _occupancy_factor(store: _Section) -> float | None:
    """``[store] occupancy_factor``: the store's calibrated people per device, or None (the default)."""
    value = store.get("occupancy_factor", float, None, "a number")
    if value is None:
        return None
    lo, hi = OCCUPANCY_FACTOR_RANGE
    if not lo <= value <= hi:
        raise store.error("occupancy_factor", f"people per device between {lo} and {hi} (floorwalker-aggregator "
                          f"calibrate-factor prints it), got {value}")
    return float(value)


# --------------------------------------------------------------------------- store: integrations

ANONYMOUS_MODES = ("floorwalker-topic", "integer-ids")
ALERT_KINDS = ("occupancy", "agent-offline", "dead-letters")
WEBHOOK_FORMATS = ("json", "slack", "discord")


@dataclass(frozen=True, slots=True)
class HomeAssistantConfig:
    """``[home_assistant]``: retained MQTT discovery messages so a store's Home Assistant shows occupancy."""

    enabled: bool = False
    discovery_prefix: str = "homeassistant"


@dataclass(frozen=True, slots=True)
class CustomerTierConfig:
    """``[customer_tier]``: where the retail demo's topics go, and what becomes of anonymous shoppers.

    ``prefix`` keeps two stores on one broker apart (``store-a`` -> ``store-a/customer/enter``).
    ``anonymous``: ``floorwalker-topic`` publishes shoppers linked to no customer on
    ``floorwalker/<store>/shopper/<kind>``; ``integer-ids`` keeps them on ``customer/*`` with an
    integer id at or above ``anonymous_id_base``, which must exceed every customer id."""

    prefix: str = ""
    anonymous: str = "floorwalker-topic"
    anonymous_id_base: int = 1_000_000_000


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One ``[[alerts.rules]]``: a condition that must hold ``for_s`` before the webhook hears of it."""

    name: str
    kind: str
    for_s: float
    zone: str | None = None  # occupancy: a zone's count, or None for the whole store
    max_people: int = 0  # occupancy: alert above this
    agent: str | None = None  # agent-offline: one agent, or None for any
    max_new: int = 0  # dead-letters: alert when more than this many arrive within window_s
    window_s: float = 300.0


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """``[alerts]``: rules evaluated by the aggregator, posted as JSON to ``webhook_url`` (env WEBHOOK_URL)."""

    webhook_url: str = ""
    format: str = "json"
    rules: tuple[AlertRule, ...] = ()


def _integrations(root: _Section, *, zones: list[str]) -> dict[str, Any]:
    """The optional integration tables of a store file, as StoreConfig keyword arguments."""
    out: dict[str, Any] = {}
    ha = root.section("home_assistant")
    if ha is not None:
        prefix = ha.text("discovery_prefix", "homeassistant", non_empty=True)
        if any(c in prefix for c in "+#\x00") or prefix.startswith("/") or prefix.endswith("/"):
            raise ha.error("discovery_prefix", f"an MQTT topic prefix without wildcards or outer '/', got {prefix!r}")
        out["home_assistant"] = HomeAssistantConfig(ha.get("enabled", bool, False), prefix)
        ha.finish()
    tier = root.section("customer_tier")
    if tier is not None:
        prefix = tier.text("prefix", "")
        if any(c in prefix for c in "+#\x00") or prefix.startswith("/") or prefix.endswith("/"):
            raise tier.error("prefix", f"a topic prefix without wildcards or outer '/', got {prefix!r}")
        mode = tier.text("anonymous", "floorwalker-topic")
        if mode not in ANONYMOUS_MODES:
            raise tier.error("anonymous", f"one of {', '.join(ANONYMOUS_MODES)}, got {mode!r}")
        base = tier.integer("anonymous_id_base", 1_000_000_000, min_value=1)
        if base > 2**31 - 1 - 10**9:
            raise tier.error("anonymous_id_base", f"at most {2**31 - 1 - 10**9} (ids stay 32-bit), got {base}")
        out["customer_tier"] = CustomerTierConfig(prefix, mode, base)
        tier.finish()
    alerts = root.section("alerts")
    if alerts is not None:
        out["alerts"] = _alerts(alerts, zones)
    return out


def _alerts(sec: _Section, zones: list[str]) -> AlertsConfig:
    url = sec.text("webhook_url", "")
    url = os.environ.get("WEBHOOK_URL") or url  # seed 002's variable wins, as the data files' do
    if url and not url.startswith(("http://", "https://")):
        raise sec.error("webhook_url", f"an http:// or https:// URL (or WEBHOOK_URL), got {url[:80]!r}")
    fmt = sec.text("format", "json")
    if fmt not in WEBHOOK_FORMATS:
        raise sec.error("format", f"one of {', '.join(WEBHOOK_FORMATS)}, got {fmt!r}")
    rules = tuple(_alert_rule(r, i, zones) for i, r in enumerate(sec.sections("rules")))
    names = [r.name for r in rules]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(str(sec.file), f"alerts.rules[{i}].name", f"a unique rule name, {name!r} is used twice")
    if rules and not url:
        raise sec.error("webhook_url", "a URL to post to (or set WEBHOOK_URL) when rules are declared")
    sec.finish()
    return AlertsConfig(url, fmt, rules)


def _alert_rule(sec: _Section, index: int, zones: list[str]) -> AlertRule:
    kind = sec.text("kind", non_empty=True)
    if kind not in ALERT_KINDS:
        raise sec.error("kind", f"one of {', '.join(ALERT_KINDS)}, got {kind!r}")
    name = sec.text("name", f"{kind}-{index + 1}", non_empty=True)
    if kind == "occupancy":
        zone = sec.text("zone", "") or None
        if zone is not None and zone not in zones:
            raise sec.error("zone", f"a zone of this store ({', '.join(zones)}), got {zone!r}")
        rule = AlertRule(name, kind, sec.number("for_s", 60.0, min_value=0.0), zone=zone,
                         max_people=sec.integer("max_people", min_value=0))
    elif kind == "agent-offline":
        rule = AlertRule(name, kind, sec.number("minutes", min_value=0.0) * 60.0, agent=sec.text("agent", "") or None)
    else:
        rule = AlertRule(name, kind, sec.number("for_s", 0.0, min_value=0.0), max_new=sec.integer("max_new", 0,
                         min_value=0), window_s=sec.number("window_s", 300.0, min_value=1.0))
    sec.finish()
    return rule
def _chain(sec: _Section | None, path: Path) -> ChainShipping | None:
    """``[chain]``: off unless ``ship = true``; the directory may not exist yet (a mount that comes later)."""
    if sec is None:
        return None
    ship = sec.get("ship", bool, False)
    raw_dir = sec.text("directory", "" if not ship else _MISSING, non_empty=ship)
    env_key = os.environ.get("FLOORWALKER_CHAIN_KEY")
    key = env_key or sec.text("key", "" if (env_key or not ship) else _MISSING)
    interval_s = sec.number("interval_s", 60.0, min_value=0.1, max_value=86400.0)
    batch_rows = sec.integer("batch_rows", 20_000, min_value=1)
    sec.finish()
    if not ship:
        return None
    if len(key) < 16:
        raise sec.error("key", "at least 16 characters (it keys the chain's visitor-id hash)")
    directory = Path(raw_dir)
    if not directory.is_absolute():
        directory = Path(os.path.normpath(path.parent / directory))
    return ChainShipping(directory=directory, key=key, interval_s=interval_s, batch_rows=batch_rows)


def _check_timezone(name: str, sec: _Section) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise sec.error("timezone", f"an IANA time zone such as 'Europe/Warsaw', got {name!r}") from None


def _zone(sec: _Section, plan: Plan) -> Zone:
    name = sec.text("name", non_empty=True)
    category = sec.text("category", non_empty=True)
    raw = sec.get("polygon", list, what="an array of at least 3 points [x, y]")
    if len(raw) < 3:
        raise sec.error("polygon", f"at least 3 points [x, y], got {len(raw)}")
    polygon = tuple(_point(p, sec, f"polygon[{i}]", plan) for i, p in enumerate(raw))
    if polygon_area(polygon) <= 0:
        raise sec.error("polygon", "a polygon with a non-zero area (points are collinear)")
    zone = Zone(name=name, category=category, polygon=polygon, department=sec.text("department", name))
    sec.finish()
    return zone


def _relative_file(base: Path, value: str, sec: _Section, key: str) -> Path:
    p = Path(value)
    p = p if p.is_absolute() else Path(os.path.normpath(base.parent / p))
    if not p.is_file():
        raise sec.error(key, f"an existing file, {p} does not exist")
    return p


def _data_file(base: Path, sec: _Section, key: str, env: str, default: str) -> Path:
    """Data files may be overridden by the seed-000 environment variables."""
    if os.environ.get(env):
        sec.used.add(key)
        return Path(os.environ[env])
    return _relative_file(base, sec.text(key, default), sec, key)


# --------------------------------------------------------------------------- device


@dataclass(frozen=True, slots=True)
class CalibrationPoint:
    distance_m: float
    rssi_dbm: float


@dataclass(frozen=True, slots=True)
class SnifferConfig:
    """A Wi-Fi probe sniffer on a serial port, at a known plan position."""

    id: str
    port: str
    baud: int
    position_px: Point
    height_m: float
    calibration: tuple[CalibrationPoint, ...]


@dataclass(frozen=True, slots=True)
class PirConfig:
    """A PIR: the zone it serves and, when it does not watch that whole zone, the rectangle it does watch
    (``area``, plan pixels x0, y0, x1, y1: a strip along a department's opening, a stretch of aisle)."""

    id: str
    pin: int
    zone: str
    hold_off_s: float
    area: tuple[float, float, float, float] | None = None

    def sees(self, pos: Point, plan: Plan) -> bool:
        """Whether a person at ``pos`` (plan pixels) is in this PIR's view: its ``area`` (edges included),
        else its whole zone. The one rule the mock's pins and the positioning benchmark's reports follow."""
        if self.area is not None:
            x0, y0, x1, y1 = self.area
            return x0 <= pos[0] <= x1 and y0 <= pos[1] <= y1
        zone = plan.zone_named(self.zone)
        return zone is not None and zone.contains(pos)


@dataclass(frozen=True, slots=True)
class DoorConfig:
    """Two beam-break inputs a few centimetres apart: A is the outside beam, B the inside one."""

    id: str
    pin_a: int
    pin_b: int
    max_gap_s: float
    bounce_s: float


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "localhost"
    port: int = 1883
    username: str = ""
    password: str = ""
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    keepalive_s: int = 30

    def with_env(self, environ: dict[str, str] | None = None) -> MqttSettings:
        """``MQTT_HOST``/``MQTT_PORT``/``MQTT_USERNAME``/``MQTT_PASSWORD``/``MQTT_BROKER_CERT_FILE``
        (seed 000's names) override the file."""
        env = os.environ if environ is None else environ
        changes: dict[str, Any] = {}
        if env.get("MQTT_HOST"):
            changes["host"] = env["MQTT_HOST"]
        if env.get("MQTT_PORT"):
            try:
                changes["port"] = int(env["MQTT_PORT"])
            except ValueError:
                raise ConfigError("environment", "MQTT_PORT", f"an integer, got {env['MQTT_PORT']!r}") from None
            if not 0 < changes["port"] < 65536:
                raise ConfigError("environment", "MQTT_PORT", f"a port 1..65535, got {changes['port']}")
        if env.get("MQTT_USERNAME"):
            changes["username"] = env["MQTT_USERNAME"]
        if env.get("MQTT_PASSWORD"):
            changes["password"] = env["MQTT_PASSWORD"]
        if env.get("MQTT_BROKER_CERT_FILE"):
            changes["ca_file"] = env["MQTT_BROKER_CERT_FILE"]
            changes["tls"] = True
        if not changes:
            return self
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        fields.update(changes)
        return MqttSettings(**fields)


@dataclass(frozen=True, slots=True)
class PresenceSettings:
    """When a heard device counts as a shopper; numbers are starting points to tune per store."""

    rssi_floor_dbm: float = -85.0
    min_sightings: int = 2
    move_threshold_px: float = 40.0
    absence_s: float = 180.0
    # longer than any shift: a staff phone heard all shift is a person (agent.device_kinds: 12 h too)
    static_after_s: float = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class SpoolSettings:
    path: Path
    max_messages: int = 200_000


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One agent: which store it belongs to, how it reaches the broker, and its sensors."""

    path: Path
    agent_id: str
    store: StoreConfig
    mqtt: MqttSettings
    presence: PresenceSettings
    spool: SpoolSettings
    health_interval_s: float
    sniffers: tuple[SnifferConfig, ...] = ()
    pirs: tuple[PirConfig, ...] = ()
    door: DoorConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def pir_sensor(agent_id: str, pir_id: str) -> str:
    """A PIR's name off the agent: ``<agent>/<pir id>`` (PIR ids are unique within one agent only). Ingest
    keys a motion report by it; fusion's PIR board and the live occupancy know the area PIRs by it."""
    return f"{agent_id}/{pir_id}"


def area_pirs(devices: Iterable[DeviceConfig]) -> dict[str, tuple[float, float, float, float]]:
    """The PIRs that watch a rectangle of the plan rather than a whole zone: sensor name
    (:func:`pir_sensor`) -> ``area`` (plan pixels). Their reports weigh only the grid's cells, and their
    quiet does not say their zone is empty."""
    return {pir_sensor(d.agent_id, pir.id): pir.area for d in devices for pir in d.pirs if pir.area is not None}


def load_device(path: str | os.PathLike[str], *, store: StoreConfig | None = None) -> DeviceConfig:
    path = Path(path)
    root = _Section(_load_toml(path), path, "")
    agent = root.section("agent", required=True)
    assert agent is not None
    agent_id = agent.text("id", non_empty=True)
    if not all(c.isalnum() or c in "-_" for c in agent_id):
        raise agent.error("id", f"letters, digits, '-' or '_' only (it is part of MQTT topics), got {agent_id!r}")
    store_file = agent.text("store", "../store.toml")
    if store is None:
        store = load_store(_relative_file(path, store_file, agent, "store"))
    health_interval_s = agent.number("health_interval_s", 30.0, min_value=1.0)
    agent.finish()

    sniffers = tuple(_sniffer(sec, store.plan) for sec in root.sections("sniffers"))
    pirs = tuple(_pir(sec, store.plan) for sec in root.sections("pirs"))
    door_sec = root.section("door")
    door = _door(door_sec) if door_sec else None
    _check_unique_ids(path, sniffers, pirs, door)
    _check_unique_pins(path, pirs, door)
    if not (sniffers or pirs or door):
        raise root.error("sniffers", "at least one sensor ([[sniffers]], [[pirs]] or [door])")

    config = DeviceConfig(
        path=path,
        agent_id=agent_id,
        store=store,
        mqtt=_mqtt(root.section("mqtt")),
        presence=_presence(root.section("presence")),
        spool=_spool(root.section("spool"), agent_id),
        health_interval_s=health_interval_s,
        sniffers=sniffers,
        pirs=pirs,
        door=door,
    )
    root.finish()
    return config


def _sniffer(sec: _Section, plan: Plan) -> SnifferConfig:
    table = sec.get("calibration", list, what="an array of {distance_m, rssi_dbm} tables")
    if len(table) < 2:
        raise BadCalibration(str(sec.file), sec.name("calibration"), "at least 2 points {distance_m, rssi_dbm}")
    points = []
    for i, item in enumerate(table):
        row = _Section(item, sec.file, f"{sec.name('calibration')}[{i}]")
        points.append(CalibrationPoint(row.number("distance_m", min_value=0.01), row.number("rssi_dbm")))
        row.finish()
    points.sort(key=lambda p: p.distance_m)
    for a, b in pairwise(points):
        if b.distance_m == a.distance_m:
            raise BadCalibration(str(sec.file), sec.name("calibration"),
                                 f"one RSSI per distance, {a.distance_m} m appears twice")
        if b.rssi_dbm >= a.rssi_dbm:
            raise BadCalibration(
                str(sec.file), sec.name("calibration"),
                f"RSSI falling with distance, but {b.rssi_dbm} dBm at {b.distance_m} m "
                f"is not below {a.rssi_dbm} dBm at {a.distance_m} m")
    config = SnifferConfig(
        id=sec.text("id", non_empty=True),
        port=sec.text("port", non_empty=True),
        baud=sec.integer("baud", 115200, min_value=1),
        position_px=sec.point("position", plan),
        height_m=sec.number("height_m", 2.5, min_value=0.0),
        calibration=tuple(points),
    )
    sec.finish()
    return config


def _pir(sec: _Section, plan: Plan) -> PirConfig:
    zone = sec.text("zone", non_empty=True)
    if plan.zone_named(zone) is None:
        names = ", ".join(repr(z.name) for z in plan.zones)
        raise sec.error("zone", f"one of the store's zones ({names}), got {zone!r}")
    config = PirConfig(
        id=sec.text("id", non_empty=True),
        pin=_pin(sec, "pin"),
        zone=zone,
        hold_off_s=sec.number("hold_off_s", 5.0, min_value=0.0),
        area=_area(sec, "area", plan) if "area" in sec.data else None,
    )
    sec.finish()
    return config


def _area(sec: _Section, key: str, plan: Plan) -> tuple[float, float, float, float]:
    """A rectangle [x0, y0, x1, y1] in plan pixels, inside the plan, with x0 < x1 and y0 < y1."""
    value = sec.get(key, list, what="a rectangle [x0, y0, x1, y1]")
    if (len(value) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not all(math.isfinite(v) for v in value)):
        raise sec.error(key, f"a rectangle [x0, y0, x1, y1] of four numbers, got {value!r}")
    x0, y0, x1, y1 = (float(v) for v in value)
    if not (x0 < x1 and y0 < y1):
        raise sec.error(key, f"a rectangle [x0, y0, x1, y1] with x0 < x1 and y0 < y1, got {value!r}")
    if not (plan.contains((x0, y0)) and plan.contains((x1, y1))):
        raise sec.error(key, f"a rectangle inside the plan (0..{plan.width_px}, 0..{plan.height_px}), got {value!r}")
    return x0, y0, x1, y1


def _door(sec: _Section) -> DoorConfig:
    config = DoorConfig(
        id=sec.text("id", "door"),
        pin_a=_pin(sec, "pin_a"),
        pin_b=_pin(sec, "pin_b"),
        max_gap_s=sec.number("max_gap_s", 1.5, min_value=0.01),
        bounce_s=sec.number("bounce_s", 0.02, min_value=0.0),
    )
    if config.pin_a == config.pin_b:
        raise sec.error("pin_b", f"a different pin from pin_a ({config.pin_a})")
    sec.finish()
    return config


def _pin(sec: _Section, key: str) -> int:
    """BCM GPIO numbers of a Raspberry Pi's 40-pin header are 2..27."""
    pin = sec.integer(key)
    if not 2 <= pin <= 27:
        raise sec.error(key, f"a BCM GPIO number between 2 and 27, got {pin}")
    return pin


def _check_unique_ids(path: Path, sniffers: Iterable[SnifferConfig], pirs: Iterable[PirConfig],
                      door: DoorConfig | None) -> None:
    seen: dict[str, str] = {}
    items = [(f"sniffers[{i}].id", s.id) for i, s in enumerate(sniffers)]
    items += [(f"pirs[{i}].id", p.id) for i, p in enumerate(pirs)]
    if door:
        items.append(("door.id", door.id))
    for where, sensor_id in items:
        if sensor_id in seen:
            raise ConfigError(str(path), where, f"a unique sensor id, {sensor_id!r} is also {seen[sensor_id]}")
        seen[sensor_id] = where


def _check_unique_pins(path: Path, pirs: Iterable[PirConfig], door: DoorConfig | None) -> None:
    seen: dict[int, str] = {}
    items = [(f"pirs[{i}].pin", p.pin) for i, p in enumerate(pirs)]
    if door:
        items += [("door.pin_a", door.pin_a), ("door.pin_b", door.pin_b)]
    for where, pin in items:
        if pin in seen:
            raise ConfigError(str(path), where, f"a GPIO pin not used by another sensor, {pin} is also {seen[pin]}")
        seen[pin] = where


def _mqtt(sec: _Section | None) -> MqttSettings:
    if sec is None:
        return MqttSettings()
    port = sec.integer("port", 1883, min_value=1)
    if port > 65535:
        raise sec.error("port", f"a TCP port 1..65535, got {port}")
    settings = MqttSettings(
        host=sec.text("host", "localhost", non_empty=True),
        port=port,
        username=sec.text("username", ""),
        password=sec.text("password", ""),
        tls=sec.get("tls", bool, False),
        ca_file=sec.text("ca_file", ""),
        cert_file=sec.text("cert_file", ""),
        key_file=sec.text("key_file", ""),
        # MQTT's Keep Alive is a 16-bit field: a larger value cannot be sent in the CONNECT
        keepalive_s=sec.integer("keepalive_s", 30, min_value=5, max_value=65535),
    )
    if bool(settings.cert_file) != bool(settings.key_file):
        raise sec.error("key_file", "cert_file and key_file given together (client certificate)")
    sec.finish()
    return settings


def _presence(sec: _Section | None) -> PresenceSettings:
    if sec is None:
        return PresenceSettings()
    d = PresenceSettings()
    settings = PresenceSettings(
        rssi_floor_dbm=sec.number("rssi_floor_dbm", d.rssi_floor_dbm, max_value=0.0),
        min_sightings=sec.integer("min_sightings", d.min_sightings, min_value=1),
        move_threshold_px=sec.number("move_threshold_px", d.move_threshold_px, min_value=0.0),
        absence_s=sec.number("absence_s", d.absence_s, min_value=1.0),
        static_after_s=sec.number("static_after_s", d.static_after_s, min_value=60.0),
    )
    sec.finish()
    return settings


def _spool(sec: _Section | None, agent_id: str) -> SpoolSettings:
    default_path = default_state_dir() / "spool" / f"{agent_id}.sqlite"
    if sec is None:
        return SpoolSettings(path=default_path)
    raw = sec.text("path", "")
    settings = SpoolSettings(
        path=Path(raw) if raw else default_path,
        max_messages=sec.integer("max_messages", 200_000, min_value=1),
    )
    sec.finish()
    return settings


def load_config_dir(directory: str | os.PathLike[str]) -> tuple[StoreConfig, list[DeviceConfig]]:
    """A configuration directory's store and device files: the store of the device files when there is a
    ``devices/`` directory (:func:`load_deployment`), else ``store.toml`` alone with no devices."""
    base = Path(directory)
    if (base / "devices").is_dir():
        devices = load_deployment(base)
        return devices[0].store, devices
    return load_store(base / "store.toml"), []


def load_deployment(directory: str | os.PathLike[str] | None = None) -> list[DeviceConfig]:
    """Every device file of a deployment (``devices/*.toml``), checked for duplicate agent ids."""
    base = Path(directory) if directory else default_config_dir()
    files = sorted((base / "devices").glob("*.toml"))
    if not files:
        raise ConfigError(str(base / "devices"), "(directory)", "at least one device file *.toml")
    store_cache: dict[Path, StoreConfig] = {}
    devices: list[DeviceConfig] = []
    seen: dict[str, Path] = {}
    for file in files:
        raw = _load_toml(file)
        store_rel = raw.get("agent", {}).get("store", "../store.toml") if isinstance(raw.get("agent"), dict) else None
        store = None
        if isinstance(store_rel, str):
            store_path = (file.parent / store_rel).resolve()
            if store_path.is_file():
                store = store_cache.get(store_path) or load_store(store_path)
                store_cache[store_path] = store
        device = load_device(file, store=store)
        if device.agent_id in seen:
            raise ConfigError(str(file), "agent.id", f"an agent id unique in the deployment, "
                              f"{device.agent_id!r} is also in {seen[device.agent_id]}")
        seen[device.agent_id] = file
        devices.append(device)
    return devices
