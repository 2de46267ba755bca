"""The systemd units: systemd's own checker accepts them, and they say what the deployment needs.

``systemd-analyze verify`` resolves ExecStart= and the units' dependencies, so it runs against a
scratch root: the install script writes the units there, the root gets a copy of the machine's
stock units (targets) and stand-ins for the two console scripts the real venv would hold.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, run

pytestmark = pytest.mark.deploy

SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
UNITS = ("floorwalker-agent@agent-1.service", "floorwalker-aggregator.service")


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not Path(SYSTEMD_ANALYZE).exists():
        pytest.fail("systemd-analyze is not installed (Debian: apt-get install systemd)")
    root = tmp_path_factory.mktemp("units") / "root"
    # The real venv step, made cheap: PIP_NO_DEPS installs only this checkout (a few seconds), which
    # is enough for the console scripts ExecStart= names to exist where the units expect them.
    run(DEPLOY / "install-agent.sh", "--root", root, "--python", sys.executable, "--agent", "agent-1",
        env={"PIP_NO_DEPS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    run(DEPLOY / "install-aggregator.sh", "--root", root, "--no-venv")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    return root


def analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEMD_ANALYZE, *map(str, args)], capture_output=True, text=True, timeout=60)


def test_units_pass_systemd_analyze_verify(unit_root) -> None:
    proc = analyze("verify", f"--root={unit_root}", *UNITS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", f"systemd-analyze complained:\n{proc.stderr}"


def test_the_venv_built_in_a_scratch_root_points_at_the_target_path(unit_root) -> None:
    venv = unit_root / "opt/floorwalker/venv"
    for name in ("floorwalker-agent", "floorwalker-aggregator"):
        assert (venv / "bin" / name).read_text().splitlines()[0] == "#!/opt/floorwalker/venv/bin/python"
    leftovers = [p.name for p in (venv / "bin").iterdir() if p.is_file() and str(unit_root).encode() in p.read_bytes()]
    assert leftovers == []
    proc = subprocess.run([venv / "bin/python", "-c", "import agent.config, aggregator; print(agent.config.__file__)"],
                          capture_output=True, text=True, timeout=30, cwd=unit_root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(venv)), "the venv must import its own copy, not the checkout"


def test_verify_catches_a_broken_unit(unit_root, tmp_path) -> None:
    """The check above can fail: a misspelt directive and a missing binary are both reported."""
    broken = tmp_path / "root"
    shutil.copytree(unit_root, broken, symlinks=True)
    unit = broken / "etc/systemd/system/floorwalker-aggregator.service"
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHme=yes"))
    (broken / "opt/floorwalker/venv/bin/floorwalker-agent").unlink()
    proc = analyze("verify", f"--root={broken}", *UNITS)
    assert "Unknown key 'ProtectHme'" in proc.stderr
    assert "floorwalker-agent is not executable" in proc.stderr and proc.returncode != 0


@pytest.mark.parametrize("unit", UNITS)
def test_hardening_exposure_is_low(unit_root, unit) -> None:
    # --threshold is in tenths of the printed level: 30 means "fail above 3.0"
    proc = analyze("security", "--offline=true", f"--root={unit_root}", "--threshold=30", unit)
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout)
    assert level, proc.stdout + proc.stderr
    print(f"{unit}: systemd-analyze security exposure {level.group(1)} (0 = locked down, 10 = none)")
    assert proc.returncode == 0 and float(level.group(1)) <= 3.0


def directives(path: Path) -> dict[str, list[str]]:
    """``Key`` -> every value it is given (systemd allows repeated keys), across sections."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


COMMON = {
    "Type": ["notify"], "User": ["floorwalker"], "Group": ["floorwalker"], "Restart": ["on-failure"],
    "NoNewPrivileges": ["yes"], "ProtectSystem": ["strict"], "ProtectHome": ["yes"], "PrivateTmp": ["yes"],
    "ProtectKernelTunables": ["yes"], "ProtectKernelModules": ["yes"], "ProtectKernelLogs": ["yes"],
    "ReadWritePaths": ["/var/lib/floorwalker"], "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
    "WatchdogSec": ["60s"], "WantedBy": ["multi-user.target"],
}


def test_agent_unit_runs_one_device_file_with_gpio_and_serial_only() -> None:
    d = directives(DEPLOY / "systemd/floorwalker-agent@.service")
    assert {k: d.get(k) for k in COMMON} == COMMON
    assert d["ExecStart"] == ["/opt/floorwalker/venv/bin/floorwalker-agent run "
                              "--config /etc/floorwalker/devices/%i.toml"]
    assert d["SupplementaryGroups"] == ["gpio dialout"]
    assert d["EnvironmentFile"] == ["/etc/floorwalker/agent.env", "-/etc/floorwalker/devices/%i.env"]
    assert d["DevicePolicy"] == ["closed"]
    allowed = {v.split()[0] for v in d["DeviceAllow"]}
    assert {"char-ttyUSB", "char-ttyACM", "char-gpiochip"} <= allowed
    assert "PrivateDevices" not in d  # it would hide the serial ports and GPIO


def test_aggregator_unit_serves_the_state_database() -> None:
    d = directives(DEPLOY / "systemd/floorwalker-aggregator.service")
    assert {k: d.get(k) for k in COMMON} == COMMON
    assert d["ExecStart"] == ["/opt/floorwalker/venv/bin/floorwalker-aggregator serve "
                              "--db /var/lib/floorwalker/floorwalker.db $FLOORWALKER_SERVE_ARGS"]
    assert d["EnvironmentFile"] == ["/etc/floorwalker/aggregator.env"]
    assert d["PrivateDevices"] == ["yes"] and "SupplementaryGroups" not in d
