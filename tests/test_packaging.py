"""What pip installs says what pyproject.toml says: the licence (LICENSE is the Apache-2.0 text) and the
sensor Pi's GPIO library in the ``agent`` extra (issue 20 items 7 and 9)."""

from __future__ import annotations

import importlib.metadata
import tomllib

import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_license_file_is_the_apache_2_text_pyproject_names() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text()
    for line in ("Apache License", "Version 2.0, January 2004", "http://www.apache.org/licenses/",
                 "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION", "END OF TERMS AND CONDITIONS",
                 'Licensed under the Apache License, Version 2.0 (the "License");'):
        assert line in text, f"LICENSE lacks {line!r}"
    metadata = importlib.metadata.metadata("floorwalker")  # what the installed package declares
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "LICENSE" in (metadata.get_all("License-File") or [])


def _agent_requirements() -> list[Requirement]:
    return [Requirement(line) for line in PYPROJECT["project"]["optional-dependencies"]["agent"]]


def _applies(req: Requirement, machine: str, python: str) -> bool:
    env = {"sys_platform": "linux", "platform_machine": machine, "python_version": python}
    return req.marker is None or req.marker.evaluate(env)


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_the_agent_extra_brings_lgpio_on_a_64_bit_pi(python: str) -> None:
    """gpiozero needs lgpio on a Pi 5 (and for anything but its experimental pins on a Pi 4)."""
    names = {req.name for req in _agent_requirements() if _applies(req, "aarch64", python)}
    assert {"gpiozero", "pyserial", "lgpio"} <= names
    # where PyPI has no wheel it would be a source build needing swig: install-agent.sh says what to do there
    assert "lgpio" not in {req.name for req in _agent_requirements() if _applies(req, "x86_64", python)}


def test_the_pi_lock_pins_lgpio_inside_the_extra_s_range() -> None:
    (extra,) = [req for req in _agent_requirements() if req.name == "lgpio"]
    locked = [Requirement(line) for line in (REPO / "deploy/requirements-agent.lock").read_text().splitlines()
              if line.strip() and not line.startswith("#") and line.lower().startswith("lgpio")]
    assert len(locked) == 1
    (pin,) = locked[0].specifier
    assert pin.operator == "==" and extra.specifier.contains(pin.version)
    assert locked[0].marker is not None and str(locked[0].marker) == str(extra.marker)
