"""Configuration loading: the shipped files load; each kind of mistake names file, field, expectation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config import area_pirs, load_deployment, load_device, load_store, pir_sensor
from agent.errors import BadCalibration, ConfigError


def test_shipped_deployment_loads(config_dir: Path) -> None:
    devices = load_deployment(config_dir)
    assert len(devices) >= 4
    store = devices[0].store
    assert (store.plan.width_px, store.plan.height_px) == (1808, 1315)
    assert 35 <= store.plan.width_px * store.plan.metres_per_px <= 37  # "about 36 m wide"
    assert [z.name for z in store.plan.zones] == ["Women's", "Boy's", "Girl's", "Men's", "Sport"]
    assert {z.category for z in store.plan.zones} == {"clothing", "sport"}
    assert store.entrance == (937, 50) and store.exit == (1071, 50)
    assert store.secret_is_placeholder
    assert any(d.door for d in devices) and all(d.sniffers for d in devices)


def test_a_pir_sees_its_area_or_else_its_zone(config_dir: Path) -> None:
    # The one rule the mock's PIR pins and the positioning benchmark's reports follow; area_pirs is what the
    # fusion's PIR board and the live occupancy are told, keyed as ingest names a PIR ("<agent>/<pir id>").
    devices = load_deployment(config_dir)
    agent2 = next(d for d in devices if d.agent_id == "agent-2")
    plan = agent2.store.plan
    pirs = {p.id: p for p in agent2.pirs}
    whole, strip = pirs["pir-boys"], pirs["pir-boys-n"]  # all of Boy's; its 1 m north strip [672, 443, 992, 493]
    middle, north = (832.0, 550.0), (832.0, 460.0)
    assert whole.sees(middle, plan) and whole.sees(north, plan)
    assert strip.sees(north, plan) and not strip.sees(middle, plan)
    assert strip.sees((992.0, 493.0), plan) and not strip.sees((992.5, 493.0), plan)  # its edges are in view
    assert not whole.sees((100.0, 100.0), plan)
    strips = area_pirs(devices)
    assert strips[pir_sensor("agent-2", "pir-boys-n")] == (672.0, 443.0, 992.0, 493.0)
    assert "agent-2/pir-boys-n" in strips and "agent-2/pir-boys" not in strips
    assert len(strips) == sum(p.area is not None for d in devices for p in d.pirs)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"fixture text {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


# Each case: which file to edit, the text to replace, its replacement, and the field the error names.
CASES = {
    "unknown key": ("store.toml", 'name = "Floorwalker demo store"', 'nmae = "typo"', r"store\.nmae: unknown key"),
    "wrong type": ("store.toml", "plan_width_px = 1808", 'plan_width_px = "wide"', r"store\.plan_width_px: an integer"),
    "polygon < 3 points": ("store.toml", "polygon = [[445, 443], [666, 443], [666, 879], [445, 879]]",
                           "polygon = [[445, 443], [666, 443]]", r"zones\[0\]\.polygon: at least 3 points"),
    "polygon outside plan": ("store.toml", "[[614, 984], [1186, 984]", "[[614, 984], [9186, 984]",
                             r"zones\[4\]\.polygon\[1\]: a point inside the plan"),
    "bad time zone": ("store.toml", 'timezone = "Europe/Warsaw"', 'timezone = "Mars/Olympus"', r"store\.timezone"),
    "short secret": ("store.toml", 'secret = "CHANGE-ME-demo-store-secret-0000"', 'secret = "short"',
                     r"store\.secret: at least 16"),
    "missing section": ("devices/agent-2.toml", "[agent]", "[agnet]", r"agent: a table"),
    "sniffer outside plan": ("devices/agent-2.toml", "position = [752, 550]", "position = [5000, 330]",
                             r"sniffers\[0\]\.position: a point inside the plan"),
    "pir unknown zone": ("devices/agent-2.toml", 'zone = "Boy\'s"', 'zone = "Toys"', r"pirs\[0\]\.zone: one of"),
    "pin out of range": ("devices/agent-2.toml", "pin = 27", "pin = 99", r"pirs\[1\]\.pin: a BCM GPIO"),
    "duplicate pin": ("devices/agent-2.toml", "pin = 27", "pin = 17", r"pirs\[1\]\.pin: a GPIO pin not used"),
    "pir area outside plan": ("devices/agent-2.toml", "area = [672, 443, 992, 493]", "area = [672, 443, 9992, 493]",
                              r"pirs\[2\]\.area: a rectangle inside the plan"),
    "pir area upside down": ("devices/agent-2.toml", "area = [672, 443, 992, 493]", "area = [992, 443, 672, 493]",
                             r"pirs\[2\]\.area: .*x0 < x1"),
    "pir area not 4 numbers": ("devices/agent-2.toml", "area = [672, 443, 992, 493]", "area = [672, 443, 992]",
                               r"pirs\[2\]\.area: a rectangle \[x0, y0, x1, y1\] of four numbers"),
    "bad port": ("devices/agent-2.toml", "port = 1883", "port = 70000", r"mqtt\.port: a TCP port"),
    "keepalive beyond 16 bits": ("devices/agent-2.toml", "port = 1883", "port = 1883\nkeepalive_s = 65536",
                                 r"mqtt\.keepalive_s: an integer <= 65535, got 65536"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_names_file_field_and_expectation(config_dir: Path, case: str) -> None:
    file, old, new, pattern = CASES[case]
    _edit(config_dir / file, old, new)
    with pytest.raises(ConfigError) as info:
        load_deployment(config_dir)
    message = str(info.value)
    assert Path(file).name in message
    assert re.search(pattern, message), message


def test_calibration_must_fall_with_distance(config_dir: Path) -> None:
    _edit(config_dir / "devices/agent-3.toml", "rssi_dbm = -59 }", "rssi_dbm = -45 }")
    with pytest.raises(BadCalibration, match=r"agent-3\.toml: sniffers\[0\]\.calibration: RSSI falling"):
        load_device(config_dir / "devices/agent-3.toml")


def test_calibration_needs_two_points(config_dir: Path) -> None:
    path = config_dir / "devices/agent-3.toml"
    text = path.read_text()
    start = text.index("calibration = [")
    end = text.index("]", text.index("distance_m = 1")) + 1
    path.write_text(text[:start] + "calibration = [ { distance_m = 1, rssi_dbm = -42 } ]" + text[end:])
    with pytest.raises(BadCalibration, match="at least 2 points"):
        load_device(path)


def test_duplicate_agent_id(config_dir: Path) -> None:
    _edit(config_dir / "devices/agent-4.toml", 'id = "agent-4"', 'id = "agent-1"')
    with pytest.raises(ConfigError, match=r"agent\.id: an agent id unique in the deployment, 'agent-1'"):
        load_deployment(config_dir)


def test_duplicate_zone_name(config_dir: Path) -> None:
    _edit(config_dir / "store.toml", 'name = "Sport"', 'name = "Men\'s"')
    with pytest.raises(ConfigError, match=r"zones\[4\]\.name: a unique zone name"):
        load_store(config_dir / "store.toml")


def test_toml_syntax_error(config_dir: Path) -> None:
    (config_dir / "store.toml").write_text("[store\nid=")
    with pytest.raises(ConfigError, match=r"store\.toml: \(syntax\): valid TOML"):
        load_store(config_dir / "store.toml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: \(file\): an existing file"):
        load_store(tmp_path / "nope.toml")


def test_environment_overrides_broker(config_dir: Path) -> None:
    device = load_device(config_dir / "devices/agent-1.toml")
    mqtt = device.mqtt.with_env({"MQTT_HOST": "broker.local", "MQTT_PORT": "8883", "MQTT_USERNAME": "u",
                                 "MQTT_PASSWORD": "p", "MQTT_BROKER_CERT_FILE": "/etc/ca.pem"})
    assert (mqtt.host, mqtt.port, mqtt.username, mqtt.password, mqtt.ca_file, mqtt.tls) == (
        "broker.local", 8883, "u", "p", "/etc/ca.pem", True)
    with pytest.raises(ConfigError, match="MQTT_PORT: an integer"):
        device.mqtt.with_env({"MQTT_PORT": "x"})


def test_customers_file_env_override(config_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = tmp_path / "c.json"
    other.write_text("[]")
    monkeypatch.setenv("CUSTOMERS_LIST_FILE", str(other))
    assert load_store(config_dir / "store.toml").customers_file == other
