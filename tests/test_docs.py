"""The docs stay honest: every environment variable the code reads is in docs/CONFIG.md, every export
column in docs/DATA.md, every command in docs/CLI.md, and no link points outside the repository
except to public projects."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from aggregator.export import DATASETS
from tests.conftest import REPO

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# A lookup by literal name, also of names without an underscore (PORT).
ENV_LOOKUP = re.compile(r"""(?:environ|getenv|\benv)(?:\.get)?[(\[]\s*["']([A-Z][A-Z0-9_]*)["']""")
CODE_DIRS = ("agent", "aggregator", "deploy")


def _python_env_names(path: Path) -> set[str]:
    """Names looked up in the environment, directly or through a table (CustomerTopics.ENV, _data_file):
    in a module that touches the environment, every string constant shaped like a variable name."""
    text = path.read_text(encoding="utf-8")
    names = set(ENV_LOOKUP.findall(text))
    if re.search(r"environ|getenv|from_env|\benv\b", text):
        names |= {node.value for node in ast.walk(ast.parse(text))
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(node.value)}
    return names


def _deploy_env_names() -> set[str]:
    """Keys of the shipped env files, variables the units expand, shell defaults taken from the environment."""
    names: set[str] = set()
    for path in (REPO / "deploy/env").glob("*.env"):
        names |= set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", path.read_text(), re.M))
    for path in (REPO / "deploy/systemd").glob("*.service"):
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", path.read_text()))
    for path in (REPO / "deploy").rglob("*.sh"):
        names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", path.read_text()))
    return names


def env_names_in_code() -> set[str]:
    names = _deploy_env_names()
    for directory in CODE_DIRS:
        for path in (REPO / directory).rglob("*.py"):
            names |= _python_env_names(path)
    return names


def test_the_scan_finds_the_variables_we_know_are_read() -> None:
    found = env_names_in_code()
    assert {"PORT", "MQTT_HOST", "ENTER_TOPIC", "CUSTOMERS_LIST_FILE", "FLOORWALKER_ZONE_GAP_S", "LOG_LEVEL",
            "FLOORWALKER_SERVE_ARGS", "PYTHON", "FLOORWALKER_API_TOKEN"} <= found


def test_every_environment_variable_read_in_code_is_in_config_md() -> None:
    config = (REPO / "docs/CONFIG.md").read_text()
    missing = sorted(name for name in env_names_in_code() if f"`{name}`" not in config)
    assert not missing, f"read in agent/, aggregator/ or deploy/ but not documented in docs/CONFIG.md: {missing}"


@pytest.mark.parametrize("what", sorted(DATASETS))
def test_every_export_column_is_in_data_md(what: str) -> None:
    data = (REPO / "docs/DATA.md").read_text()
    section = data.split(f"### {what}", 1)
    assert len(section) == 2, f"docs/DATA.md has no '### {what}' section"
    table = section[1].split("###", 1)[0]
    for column in DATASETS[what].columns:
        assert f"| `{column.name}` |" in table, f"{what}.{column.name} is not in docs/DATA.md"


MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("firmware-config/*.md"))]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_links_stay_in_the_repository_or_go_to_public_sites(path: Path) -> None:
    text = path.read_text()
    for target in MD_LINK.findall(text):
        if target.startswith(("https://", "http://localhost", "#", "mailto:")):
            continue
        assert not target.startswith("http://"), f"{path.name}: plain-http link {target}"
        local = (path.parent / target.split("#", 1)[0]).resolve()
        assert local.is_relative_to(REPO), f"{path.name}: link {target} leaves the repository"
        assert local.exists(), f"{path.name}: link {target} points to nothing"
    assert "../shared" not in text, f"{path.name} names ../shared, which is not in the repository"
