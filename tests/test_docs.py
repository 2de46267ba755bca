"""The docs stay honest: every environment variable the code reads is in docs/CONFIG.md, every export
column in docs/DATA.md, every command in docs/CLI.md, and no link points outside the repository
except to public projects."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from pathlib import Path

import orjson
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


# ----------------------------------------------------------------------------- words users meet

# "seed 000", "seed-001's", "Seed 002": the names of the retail demo's parts in our own planning notes,
# which users never saw. Simulation seeds ("--seed 17", "seeds 101..120") are fine.
SEED_NUMBER = re.compile(r"\bseed[ -]?0\d\d\b", re.IGNORECASE)
CLI_MODULES = ("agent.cli", "aggregator.cli", "aggregator.chain.cli")


def _help_texts() -> dict[str, str]:
    """Every --help page of every program and subcommand, built in this process as argparse prints them."""
    from aggregator.launcher import build_parser as launcher_parser

    texts = {"floorwalker": launcher_parser().format_help()}
    for module_name in CLI_MODULES:
        module = importlib.import_module(module_name)
        prog = "floorwalker-" + module_name.split(".")[-2]
        parser = argparse.ArgumentParser(prog=prog, description=module.DESCRIPTION)
        sub = parser.add_subparsers()
        for name in module.COMMAND_MODULES:
            importlib.import_module(name).register(sub)
        texts[prog] = parser.format_help()
        for name, subparser in sub.choices.items():
            texts[f"{prog} {name}"] = subparser.format_help()
    return texts


def test_help_covers_every_program() -> None:
    texts = _help_texts()
    assert {"floorwalker", "floorwalker-agent mock", "floorwalker-aggregator offers", "floorwalker-chain batch"} <= \
        set(texts)


def _user_facing_files() -> list[Path]:
    return [*_markdown_files(), *sorted((REPO / "firmware-config").rglob("*.toml")),
            *sorted((REPO / "deploy").rglob("*.sh")), *sorted((REPO / "aggregator/web").glob("*.*"))]


def test_no_seed_numbers_in_docs_help_config_pages_or_the_api_description() -> None:
    from aggregator.api import ROUTE_MODULES
    from aggregator.api.openapi_core import SCHEMAS

    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for path in _user_facing_files()
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if SEED_NUMBER.search(line)]
    found += [f"{prog} --help: {m.group(0)}" for prog, text in _help_texts().items()
              for m in SEED_NUMBER.finditer(text)]
    api = orjson.dumps([SCHEMAS, *(getattr(importlib.import_module(m), "OPENAPI_PATHS", {}) for m in ROUTE_MODULES)])
    found += [f"/api/openapi.json: {m.group(0)}" for m in SEED_NUMBER.finditer(api.decode())]
    assert not found, "say 'the retail demo' (its UI, event detection, alert system), not seed numbers:\n" + \
        "\n".join(found)


def test_the_seed_number_check_finds_them() -> None:
    assert all(SEED_NUMBER.search(s) for s in ("seed 000's UI", "Seed-001 rule", "seed 002's variable"))
    assert not any(SEED_NUMBER.search(s) for s in ("--seed 17", "seeds 101..120", "random seed 0", "seed 5"))
