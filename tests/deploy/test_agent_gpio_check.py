"""deploy/install-agent.sh checks that gpiozero's pin library (lgpio) is there and says how to get it if not.

lgpio is the outside world here (a hardware library that only does anything on a Pi): the tests put
a stand-in on PYTHONPATH, one that imports and one that fails to, so both answers are checked on
any machine. The venv step is the real one, made cheap as in test_units.py (PIP_NO_DEPS).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, run

pytestmark = pytest.mark.deploy

AGENT = DEPLOY / "install-agent.sh"
CHEAP_PIP = {"PIP_NO_DEPS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _lgpio(tmp_path: Path, *, importable: bool) -> dict[str, str]:
    """A PYTHONPATH holding an lgpio that imports, or one that fails as a missing library does."""
    stub = tmp_path / ("present" if importable else "absent") / "lgpio"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("" if importable else "raise ImportError('No module named lgpio')\n")
    return {"PYTHONPATH": str(stub.parent)}


def test_missing_lgpio_is_a_warning_with_both_fixes(tmp_path: Path) -> None:
    proc = run(AGENT, "--root", tmp_path / "root", "--no-venv", "--python", sys.executable, "--agent", "agent-1",
               env=_lgpio(tmp_path, importable=False))
    out = proc.stdout
    assert f"install-agent.sh: warning: lgpio is not importable by {sys.executable}" in out
    assert "on a Pi 5 it finds no GPIO" in out
    assert "apt-get install python3-lgpio, then run this script again with --system-site-packages" in out
    assert "/opt/floorwalker/venv/bin/pip install 'lgpio>=0.2.2'" in out
    assert "install-agent.sh: done: agent installed" in out  # a warning, not a stop: the rest is installed


def test_present_lgpio_is_reported(tmp_path: Path) -> None:
    proc = run(AGENT, "--root", tmp_path / "root", "--no-venv", "--python", sys.executable, "--agent", "agent-1",
               env=_lgpio(tmp_path, importable=True))
    assert f"install-agent.sh: lgpio: importable by {sys.executable}" in proc.stdout
    assert "warning" not in proc.stdout


def test_the_venv_is_checked_and_can_see_system_packages(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = run(AGENT, "--root", root, "--python", sys.executable, "--system-site-packages", "--agent", "agent-1",
               env={**CHEAP_PIP, **_lgpio(tmp_path, importable=True)})
    assert "install-agent.sh: lgpio: importable by /opt/floorwalker/venv/bin/python" in proc.stdout
    cfg = (root / "opt/floorwalker/venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg


def test_system_site_packages_needs_the_venv(tmp_path: Path) -> None:
    proc = run(AGENT, "--root", tmp_path / "root", "--no-venv", "--system-site-packages", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == ("install-agent.sh: error: --system-site-packages: no virtual "
                                                    "environment at /opt/floorwalker/venv (drop --no-venv)")
