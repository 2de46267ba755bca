"""The command lines: --help helps, every command is documented, bad files give one line and 78."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

CLIS = {"floorwalker-agent": "agent.cli", "floorwalker-aggregator": "aggregator.cli"}


def _commands(module: str) -> list[str]:
    return [m.rsplit(".", 1)[-1] for m in importlib.import_module(module).COMMAND_MODULES]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize(("prog", "module"), sorted(CLIS.items()))
def test_every_subcommand_has_help_and_is_in_the_readme(prog: str, module: str) -> None:
    readme = (REPO / "README.md").read_text()
    for name in _commands(module):
        result = _run(module, name, "--help")
        assert result.returncode == 0, result.stderr
        assert len(result.stdout) > 200, f"{prog} {name} --help says too little"
        assert f"{prog} {name}" in readme, f"`{prog} {name}` is not documented in README.md"


def test_launcher_help() -> None:
    result = _run("aggregator.launcher", "--help")
    assert result.returncode == 0 and "--shoppers" in result.stdout


def test_bad_device_file_is_one_line_and_exit_78(config_dir: Path) -> None:
    path = config_dir / "devices/agent-2.toml"
    path.write_text(path.read_text().replace("position = [669, 443]", "position = [5000, 330]"))
    result = _run("agent.cli", "check", "--config", str(path))
    assert result.returncode == 78
    assert result.stderr.count("\n") == 1
    assert "agent-2.toml: sniffers[0].position: a point inside the plan" in result.stderr


def test_check_prints_summary() -> None:
    result = _run("aggregator.cli", "check")
    assert result.returncode == 0, result.stderr
    assert '"agents": ["agent-1", "agent-2", "agent-3", "agent-4"]' in result.stdout
