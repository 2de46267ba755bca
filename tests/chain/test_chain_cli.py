"""``floorwalker-chain``: every subcommand helps and is documented in docs/CHAIN.md; mistakes are one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

COMMANDS = ("batch", "stream", "serve")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aggregator.chain.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help_and_is_documented(command: str) -> None:
    result = _run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) > 200
    assert f"floorwalker-chain {command}" in (REPO / "docs/CHAIN.md").read_text()


def test_batch_on_an_empty_directory_says_what_it_expected(tmp_path: Path) -> None:
    result = _run("batch", "--chain-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "nothing shipped under" in result.stdout and result.stdout.count("\n") == 1


def test_bad_date_is_one_line() -> None:
    result = _run("batch", "--from", "March")
    assert result.returncode == 2 and "expected a date YYYY-MM-DD, got 'March'" in result.stderr


def test_generate_stores_documented() -> None:
    assert "floorwalker-aggregator generate --stores" in (REPO / "docs/CHAIN.md").read_text()
