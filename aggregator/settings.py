"""The aggregator's settings: environment variables (seed 000's names) over built-in defaults.

Read once at start-up and validated, so a typo in ``MQTT_PORT`` stops the service with one line
(exit 78) instead of a reconnect loop at three in the morning. The store itself (plan, zones,
customers file) comes from ``firmware-config/store.toml``; this module only says where that is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.config import MqttSettings, default_config_dir
from agent.contract import CustomerTopics
from agent.errors import ConfigError

DEFAULT_CLIENT_ID = "floorwalker-aggregator"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _env_float(env: Mapping[str, str], name: str, default: float, *, min_value: float = 0.0) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError("environment", name, f"a number, got {raw!r}") from None
    if not math.isfinite(value) or value < min_value:
        raise ConfigError("environment", name, f"a finite number >= {min_value:g}, got {raw!r}")
    return value


def _env_int(env: Mapping[str, str], name: str, default: int, *, min_value: int = 0, max_value: int = 2**31) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError("environment", name, f"an integer, got {raw!r}") from None
    if not min_value <= value <= max_value:
        raise ConfigError("environment", name, f"an integer in {min_value}..{max_value}, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the aggregator needs to start; ``from_env`` builds it, tests use ``replace``."""

    config_dir: Path = field(default_factory=default_config_dir)
    db_path: Path = Path("floorwalker.db")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    mqtt_enabled: bool = True
    client_id: str = DEFAULT_CLIENT_ID
    topics: CustomerTopics = field(default_factory=CustomerTopics)
    customers_file: Path | None = None  # None: the store file's customers_file
    coupons_file: Path | None = None
    api_token: str = ""
    log_level: str = "INFO"
    log_filename: str = ""
    # Fusion, visits and dwell (seconds unless named otherwise).
    fusion_window_s: float = 20.0
    dwell_s: float = 30.0
    passerby_s: float = 120.0
    absence_s: float = 180.0
    move_min_interval_s: float = 1.0
    move_min_px: float = 20.0
    # Storage.
    retention_days: float = 30.0
    batch_max_rows: int = 5000

    @property
    def local_only(self) -> bool:
        """True when the HTTP server listens on the loopback interface only."""
        return self.http_host in LOCAL_HOSTS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from the environment; ``overrides`` (command-line flags) win. Raises ConfigError."""
        env = os.environ if environ is None else environ
        mqtt = MqttSettings(host="localhost", port=1883).with_env(dict(env))
        if not 0 < mqtt.port < 65536:
            raise ConfigError("environment", "MQTT_PORT", f"a port 1..65535, got {mqtt.port}")
        if mqtt.ca_file and not Path(mqtt.ca_file).is_file():
            raise ConfigError("environment", "MQTT_BROKER_CERT_FILE", f"an existing CA file, {mqtt.ca_file} is not")
        try:
            topics = CustomerTopics.from_env(env)
        except ValueError as exc:
            raise ConfigError("environment", "topics", str(exc)) from None
        level = env.get("LOG_LEVEL", "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError("environment", "LOG_LEVEL", f"DEBUG, INFO, WARNING or ERROR, got {level!r}")
        files: dict[str, Path | None] = {}
        for key, var in (("customers_file", "CUSTOMERS_LIST_FILE"), ("coupons_file", "COUPONS_LIST_FILE")):
            raw = env.get(var, "")
            if raw and not Path(raw).is_file():
                raise ConfigError("environment", var, f"an existing file, {raw} is not")
            files[key] = Path(raw) if raw else None
        client_id = env.get("MQTT_CLIENT_ID") or DEFAULT_CLIENT_ID
        if len(client_id) > 128:
            raise ConfigError("environment", "MQTT_CLIENT_ID", "at most 128 characters")
        config_dir = Path(env["FLOORWALKER_CONFIG_DIR"]) if env.get("FLOORWALKER_CONFIG_DIR") else default_config_dir()
        settings = cls(
            config_dir=config_dir,
            db_path=Path(env.get("FLOORWALKER_DB") or "floorwalker.db"),
            mqtt=mqtt,
            client_id=client_id,
            topics=topics,
            customers_file=files["customers_file"],
            coupons_file=files["coupons_file"],
            api_token=env.get("FLOORWALKER_API_TOKEN", ""),
            log_level=level,
            log_filename=env.get("LOG_FILENAME", ""),
            fusion_window_s=_env_float(env, "FLOORWALKER_FUSION_WINDOW_S", 20.0, min_value=0.1),
            dwell_s=_env_float(env, "FLOORWALKER_DWELL_S", 30.0, min_value=0.0),
            passerby_s=_env_float(env, "FLOORWALKER_PASSERBY_S", 120.0, min_value=0.0),
            absence_s=_env_float(env, "FLOORWALKER_ABSENCE_S", 180.0, min_value=1.0),
            retention_days=_env_float(env, "FLOORWALKER_RETENTION_DAYS", 30.0, min_value=0.0),
            batch_max_rows=_env_int(env, "FLOORWALKER_BATCH_ROWS", 5000, min_value=1, max_value=1_000_000),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        for key in ("db_path", "config_dir"):
            if key in clean:
                clean[key] = Path(clean[key])
        if "http_port" in clean and not 0 <= int(clean["http_port"]) < 65536:
            raise ConfigError("command line", "--port", f"a port 0..65535, got {clean['http_port']}")
        return replace(settings, **clean)
