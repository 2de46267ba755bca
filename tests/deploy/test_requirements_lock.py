"""The deploy lock files: every runtime dependency pinned exactly, within pyproject.toml's ranges, and
the install scripts install from them (then Floorwalker itself with --no-deps)."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

pytestmark = pytest.mark.deploy

DEPLOY = REPO / "deploy"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _lock(name: str) -> dict[str, Requirement]:
    """The pins of a lock file, following its ``-r`` includes."""
    pins: dict[str, Requirement] = {}
    for line in (DEPLOY / name).read_text(encoding="utf-8").splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            pins.update(_lock(line[3:].strip()))
            continue
        req = Requirement(line)
        pins[canonicalize_name(req.name)] = req
    return pins


def _pinned_version(req: Requirement) -> str:
    (spec,) = req.specifier
    assert spec.operator == "==", f"{req} is not an exact pin"
    return spec.version


@pytest.mark.parametrize(("lock", "extra"), [("requirements.lock", None), ("requirements-agent.lock", "agent")])
def test_every_runtime_dependency_is_pinned_within_its_range(lock: str, extra: str | None) -> None:
    pins = _lock(lock)
    wanted = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    if extra:
        wanted += [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]]
    for req in wanted:
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"{lock} does not pin {req.name}"
        assert req.specifier.contains(_pinned_version(pin), prereleases=True), f"{lock}: {pin} is outside {req}"
        if req.marker is not None:  # a platform-only dependency keeps its marker in the lock
            assert pin.marker is not None and str(pin.marker) == str(req.marker)
    for pin in pins.values():
        _pinned_version(pin)


def test_the_agent_never_imports_numpy() -> None:
    """numpy is the aggregator's (its zone grid filter); a sensor Pi's agent stays small without it."""
    code = ("import sys, agent.cli, agent.runtime, agent.positioning, agent.occupancy, agent.linking; "
            "sys.exit('numpy' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0


@pytest.mark.parametrize(("script", "lock"), [("install-aggregator.sh", "requirements.lock"),
                                              ("install-agent.sh", "requirements-agent.lock")])
def test_the_install_scripts_install_from_their_lock(script: str, lock: str) -> None:
    assert f"install_venv \"{'[agent]' if 'agent.sh' in script else ''}\" {lock}" in (DEPLOY / script).read_text()
    common = (DEPLOY / "lib" / "common.sh").read_text(encoding="utf-8")
    assert '-m pip install --quiet --disable-pip-version-check -r "$DEPLOY/$2"' in common
    assert "--no-deps" in common


def test_the_lock_installs_here() -> None:
    """The markers evaluate here and nothing in the aggregator's lock is left to a platform."""
    env = default_environment()
    for pin in _lock("requirements.lock").values():
        assert pin.marker is None or pin.marker.evaluate(env)


def test_pyproject_ranges_have_upper_bounds() -> None:
    for line in PYPROJECT["project"]["dependencies"]:
        req = Requirement(line)
        assert any(s.operator == "<" for s in req.specifier), f"{line}: no upper bound"


