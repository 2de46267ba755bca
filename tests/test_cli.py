"""The command lines: --help helps, every command is documented (docs/CLI.md), --version and global options
everywhere, bad files and a missing configuration directory give one line and 78."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

CLIS = {"floorwalker-agent": "agent.cli", "floorwalker-aggregator": "aggregator.cli",
        "floorwalker-chain": "aggregator.chain.cli"}


def _commands(module: str) -> list[str]:
    """Each subcommand's name as its module registers it (not the module's name: `calibrate-factor`
    lives in calibrate_factor.py), aliases left out."""
    sub = argparse.ArgumentParser().add_subparsers()
    for name in importlib.import_module(module).COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return list({id(parser): command for command, parser in reversed(sub.choices.items())}.values())[::-1]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize(("prog", "module"), sorted(CLIS.items()))
def test_every_subcommand_has_help_and_is_in_the_command_reference(prog: str, module: str) -> None:
    reference = (REPO / "docs/CLI.md").read_text()
    for name in _commands(module):
        result = _run(module, name, "--help")
        assert result.returncode == 0, result.stderr
        assert len(result.stdout) > 200, f"{prog} {name} --help says too little"
        assert f"`{prog} {name}" in reference, f"`{prog} {name}` is not documented in docs/CLI.md"


def test_launcher_help() -> None:
    result = _run("aggregator.launcher", "--help")
    assert result.returncode == 0 and "--shoppers" in result.stdout


def test_bad_device_file_is_one_line_and_exit_78(config_dir: Path) -> None:
    path = config_dir / "devices/agent-2.toml"
    path.write_text(path.read_text().replace("position = [752, 550]", "position = [5000, 330]"))
    result = _run("agent.cli", "check", "--config", str(path))
    assert result.returncode == 78
    assert result.stderr.count("\n") == 1
    assert "agent-2.toml: sniffers[0].position: a point inside the plan" in result.stderr


def test_check_prints_summary() -> None:
    result = _run("aggregator.cli", "check")
    assert result.returncode == 0, result.stderr
    assert '"agents": ["agent-1", "agent-2", "agent-3", "agent-4"]' in result.stdout


# ----------------------------------------------------------------------------- global options


ALL_PROGS = {**CLIS, "floorwalker": "aggregator.launcher"}


@pytest.mark.parametrize(("prog", "module"), sorted(ALL_PROGS.items()))
def test_version_on_every_command(prog: str, module: str) -> None:
    expected = f"{prog} {importlib.metadata.version('floorwalker')}"
    assert _run(module, "--version").stdout.strip() == expected
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert expected.endswith(" " + pyproject["project"]["version"])


@pytest.mark.parametrize(("prog", "module"), sorted(CLIS.items()))
def test_global_options_before_or_after_every_subcommand(prog: str, module: str) -> None:
    parser = importlib.import_module(module).build_parser(prog, "", importlib.import_module(module).COMMAND_MODULES)
    required = {"floorwalker-aggregator offers": ["--replay", "x"], "floorwalker-aggregator import": ["f"],
                "floorwalker-aggregator export": ["--what", "visits", "--out", "x.csv"],
                "floorwalker-agent locate": ["--receivers", "r", "--readings", "s"],
                "floorwalker-agent replay": ["--config", "x", "f"],
                "floorwalker-agent calibrate": ["--config", "x", "--mac", "m"],
                "floorwalker-aggregator calibrate-factor": ["--from", "2026-11-02", "--to", "2026-11-02"]}
    for command in _commands(module):
        rest = required.get(f"{prog} {command}", ["--config", "x"] if prog == "floorwalker-agent" else [])
        before = parser.parse_args(["--log-level", "debug", command, *rest])
        after = parser.parse_args([command, *rest, "--log-level", "Warning"])
        neither = parser.parse_args([command, *rest])
        assert (before.log_level, after.log_level, neither.log_level) == ("DEBUG", "WARNING", None), command
        with pytest.raises(SystemExit) as version:
            parser.parse_args([command, *rest, "--version"])
        assert version.value.code == 0


def test_log_level_after_the_subcommand_takes_effect(tmp_path: Path) -> None:
    """The level reaches logging: recompute logs the configuration directory it used at INFO, not at WARNING."""
    db = tmp_path / "f.db"
    quiet = _run("aggregator.cli", "recompute", "--db", str(db), "--log-level", "WARNING")
    loud = _run("aggregator.cli", "recompute", "--db", str(db), "--log-level", "INFO")
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "event=config" not in quiet.stderr
    assert f"event=config config_dir={REPO / 'firmware-config'}" in loud.stderr


@pytest.mark.parametrize("module", ["aggregator.cli", "agent.cli"])
def test_bad_log_level_is_refused_in_either_place(module: str) -> None:
    for args in (["--log-level", "LOUD", "check"], ["check", "--log-level", "LOUD"]):
        result = _run(module, *args)
        assert result.returncode == 2
        assert "--log-level: one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'" in result.stderr


def test_bad_log_level_in_the_environment_is_blamed_on_it() -> None:
    result = subprocess.run([sys.executable, "-m", "aggregator.cli", "check"], capture_output=True, text=True,
                            timeout=60, cwd=REPO, env={**os.environ, "LOG_LEVEL": "LOUD"})
    assert result.returncode == 78
    assert "configuration error: environment: LOG_LEVEL: one of DEBUG" in result.stderr


def test_launcher_refuses_a_bad_log_level() -> None:
    result = _run("aggregator.launcher", "--log-level", "LOUD")
    assert result.returncode == 2 and "--log-level: one of DEBUG" in result.stderr
    assert "--host" in _run("aggregator.launcher", "--help").stdout


@pytest.mark.parametrize(("module", "args", "message"), [
    ("aggregator.launcher", ["--shoppers", "0"], "argument --shoppers: at least 1, got 0"),
    ("aggregator.launcher", ["--port", "70000"], "argument --port: a port 1..65535, got 70000"),
    ("aggregator.launcher", ["--broker-port", "x"], "argument --broker-port: a port 1..65535, got 'x'"),
    ("agent.cli", ["mock", "--config", "x", "--shoppers", "-5"], "argument --shoppers: at least 1, got -5"),
    ("agent.cli", ["mock", "--config", "x", "--randomized-share", "2"], "--randomized-share: between 0 and 1, got 2"),
    ("agent.cli", ["mock", "--config", "x", "--loyalty-share", "nan"], "--loyalty-share: between 0 and 1, got nan"),
    ("agent.cli", ["mock", "--config", "x", "--staff", "-1"], "argument --staff: at least 0, got -1"),
    ("agent.cli", ["mock", "--config", "x", "--duration", "-1"], "argument --duration: at least 0, got -1"),
    ("aggregator.cli", ["serve", "--port", "99999"], "argument --port: a port 0..65535, got 99999"),
    ("aggregator.chain.cli", ["serve", "--port", "99999"], "argument --port: a port 0..65535, got 99999"),
    ("aggregator.chain.cli", ["batch", "--parallelism", "0"], "argument --parallelism: at least 1, got 0"),
    ("agent.cli", ["replay", "--config", "x", "--speed", "-1", "f"], "argument --speed: at least 0, got -1"),
    ("aggregator.cli", ["offers", "--replay", "x", "--idle-s", "-1"], "argument --idle-s: at least 0, got -1"),
    ("aggregator.cli", ["calibrate-factor", "--from", "2026-11-02", "--to", "2026-11-02", "--window-min", "0"],
     "argument --window-min: at least 0.1, got 0"),
])
def test_bad_numbers_are_usage_errors_before_anything_starts(module: str, args: list[str], message: str) -> None:
    """They were tracebacks from each of the demo's four mock agents, after the broker had started."""
    result = _run(module, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("module", "args", "allowed"), [
    ("aggregator.launcher", ["--shoppers", "1"], "1..65535"),
    ("aggregator.cli", ["serve", "--db", "x.db"], "0..65535"),
])
def test_a_bad_port_in_the_environment_is_blamed_on_it(tmp_path: Path, module: str, args: list[str],
                                                        allowed: str) -> None:
    """PORT=abc was a traceback in `floorwalker` (even for --help) and silently port 8000 in `serve`;
    PORT=99999 was blamed on `--port`, which nobody gave."""
    for bad in ("abc", "99999"):
        result = _in(tmp_path, module, *args, "--config-dir", str(REPO / "firmware-config"), PORT=bad)
        assert result.returncode == 78, result.stderr
        assert result.stderr.strip().endswith(f"configuration error: environment: PORT: a port {allowed}, got "
                                              f"{bad if bad.isdigit() else repr(bad)}"), result.stderr
    assert _in(tmp_path, "aggregator.launcher", "--help", PORT="abc").returncode == 0


# ----------------------------------------------------------------------------- the configuration directory


def _in(cwd: Path, module: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("FLOORWALKER_CONFIG_DIR", "FLOORWALKER_STORE_SECRET")}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**clean, "PYTHONPATH": str(REPO), **env})


def test_check_in_an_empty_directory_fails_instead_of_checking_the_demo(tmp_path: Path) -> None:
    result = _in(tmp_path, "aggregator.cli", "check")
    assert result.returncode == 78
    assert result.stderr.count("\n") == 1
    assert f"--config-dir: a configuration directory; there is no ./firmware-config in {tmp_path}" in result.stderr


@pytest.mark.parametrize("command", ["generate", "recompute", "import"])
def test_data_commands_in_an_empty_directory_fail_too(tmp_path: Path, command: str) -> None:
    args = ["-"] if command == "import" else []
    result = _in(tmp_path, "aggregator.cli", command, "--db", str(tmp_path / "f.db"), *args)
    assert result.returncode == 78 and "there is no ./firmware-config" in result.stderr
    assert not (tmp_path / "f.db").exists()


def test_offers_in_an_empty_directory_fails_and_takes_the_config_dir_it_names(tmp_path: Path) -> None:
    """The error said "give --config-dir DIR", an option `offers` did not have."""
    clicks = tmp_path / "clicks.jsonl"
    clicks.write_text('{"timestamp": 1, "userId": "a", "productId": "p", "category": "clothing", "gender": "F", '
                      '"age": 30}\n')
    result = _in(tmp_path, "aggregator.cli", "offers", "--replay", str(clicks))
    assert result.returncode == 78 and "give --config-dir DIR" in result.stderr
    result = _in(tmp_path, "aggregator.cli", "offers", "--replay", str(clicks), "--config-dir",
                 str(REPO / "firmware-config"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.splitlines()[-1])["summary"]["rows"] == 1  # the counters go to stderr


def test_config_dir_is_named_and_a_missing_one_is_blamed_on_its_source(tmp_path: Path, config_dir: Path) -> None:
    result = _in(tmp_path, "aggregator.cli", "check", "--config-dir", str(config_dir))
    assert result.returncode == 0 and json.loads(result.stdout)["config_dir"] == str(config_dir.resolve())
    result = _in(tmp_path, "aggregator.cli", "check", FLOORWALKER_CONFIG_DIR=str(config_dir))
    assert json.loads(result.stdout)["config_dir"] == str(config_dir.resolve())
    result = _in(tmp_path, "aggregator.cli", "check", "--config-dir", str(tmp_path / "nope"))
    assert result.returncode == 78 and f"command line: --config-dir: an existing directory, {tmp_path / 'nope'}" \
        in result.stderr
    result = _in(tmp_path, "aggregator.cli", "check", FLOORWALKER_CONFIG_DIR=str(tmp_path / "nope"))
    assert result.returncode == 78 and "environment: FLOORWALKER_CONFIG_DIR: an existing directory" in result.stderr


def test_short_store_secret_in_the_environment_is_blamed_on_the_environment(tmp_path: Path) -> None:
    result = _in(tmp_path, "aggregator.cli", "check", "--config-dir", str(REPO / "firmware-config"),
                 FLOORWALKER_STORE_SECRET="short")
    assert result.returncode == 78
    assert "environment: FLOORWALKER_STORE_SECRET: at least 16 characters" in result.stderr
    assert "store.toml" not in result.stderr.split("(")[0]


@pytest.mark.parametrize(("module", "args"), [
    ("aggregator.cli", ["check", "--config-dir", str(REPO / "firmware-config")]),
    ("agent.cli", ["check", "--config", str(REPO / "firmware-config/devices/agent-1.toml")]),
])
def test_check_validates_the_broker_variables_and_shows_the_broker_used(tmp_path: Path, module: str,
                                                                        args: list[str]) -> None:
    """check said all was well (and showed the file's broker) while MQTT_PORT would stop `serve` or `run`."""
    for bad, expected in (("abc", "an integer, got 'abc'"), ("99999", "a port 1..65535, got 99999")):
        result = _in(tmp_path, module, *args, MQTT_PORT=bad)
        assert result.returncode == 78 and f"environment: MQTT_PORT: {expected}" in result.stderr, result.stderr
    result = _in(tmp_path, module, *args, MQTT_HOST="broker.store.lan", MQTT_PORT="8883")
    assert result.returncode == 0 and json.loads(result.stdout)["broker"] == "broker.store.lan:8883"


def test_check_reads_the_services_env_file_and_blames_it(tmp_path: Path, config_dir: Path) -> None:
    """On a store server the service's variables are in /etc/floorwalker/aggregator.env (systemd's
    EnvironmentFile=), not in the shell that runs check: check reads the file and names it."""
    template = (REPO / "deploy/env/aggregator.env").read_text()
    assert "MQTT_PORT=8883" in template and "MQTT_BROKER_CERT_FILE=/etc/floorwalker/ca.crt" in template
    env_file = config_dir / "aggregator.env"
    ca = tmp_path / "ca.crt"
    ca.write_text("not parsed by check\n")
    env_file.write_text(template.replace("MQTT_HOST=localhost", "MQTT_HOST=broker.store.lan")
                        .replace("/etc/floorwalker/ca.crt", str(ca)))
    result = _in(tmp_path, "aggregator.cli", "check", "--config-dir", str(config_dir), MQTT_PORT="1")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["broker"] == "broker.store.lan:8883"  # the file wins over the shell, as for the service
    assert summary["environment_file"] == str(env_file.resolve())
    env_file.write_text(env_file.read_text().replace("MQTT_PORT=8883", "MQTT_PORT=88830"))
    result = _in(tmp_path, "aggregator.cli", "check", "--config-dir", str(config_dir))
    assert result.returncode == 78
    assert f"configuration error: {env_file.resolve()}: MQTT_PORT: a port 1..65535, got 88830" in result.stderr
    env_file.write_text("MQTT_PORT 8883\n")
    result = _in(tmp_path, "aggregator.cli", "check", "--config-dir", str(config_dir))
    assert result.returncode == 78 and f"{env_file.resolve()}: line 1: KEY=VALUE" in result.stderr


@pytest.mark.parametrize("args", [["import", "--config-dir", str(REPO / "firmware-config")],
                                  ["export", "--what", "visits", "--out", "v.csv", "--db"]])
def test_a_missing_input_file_is_named_once(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "nope.csv"
    result = _in(tmp_path, "aggregator.cli", *args, str(missing))
    assert result.returncode == 66, result.stderr
    assert result.stderr.splitlines()[-1] == f"floorwalker-aggregator: not found: {missing}" + \
        ("" if args[0] == "import" else ": no such database file")


def test_import_needs_no_format_option(tmp_path: Path) -> None:
    sightings = tmp_path / "s.csv"
    sightings.write_text("ts,device,zone\n1796284806,phone-1,Sport\n1796284866,phone-1,Sport\n")
    result = _run("aggregator.cli", "import", "--db", str(tmp_path / "f.db"), str(sightings))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["bad"] == 0
