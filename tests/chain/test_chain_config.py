"""The store file's [chain] table: off by default, one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_store
from agent.errors import ConfigError


def _chain_table(config_dir: Path, table: str) -> Path:
    path = config_dir / "store.toml"
    text = path.read_text()
    start = text.index("[chain]")
    end = text.index("[[zones]]")
    path.write_text(text[:start] + table + "\n\n" + text[end:])
    return path


def test_shipping_is_off_by_default(config_dir: Path) -> None:
    assert load_store(config_dir / "store.toml").chain is None


def test_shipping_on_with_a_relative_directory(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOORWALKER_CHAIN_KEY", raising=False)
    path = _chain_table(config_dir, '[chain]\nship = true\ndirectory = "chain"\nkey = "k-0123456789abcdef"\n'
                                    "interval_s = 5")
    chain = load_store(path).chain
    assert chain is not None and chain.directory == config_dir / "chain" and chain.interval_s == 5.0


@pytest.mark.parametrize(("table", "message"), [
    ('[chain]\nship = true\nkey = "k-0123456789abcdef"', r"store\.toml: chain\.directory: required"),
    ('[chain]\nship = true\ndirectory = "/x"\nkey = "short"', r"chain\.key: at least 16 characters"),
    ('[chain]\nship = true\ndirectory = "/x"', r"chain\.key: required"),
    ('[chain]\nship = "yes"', r"chain\.ship: true or false"),
    ('[chain]\nship = false\ndirectroy = "/x"', r"chain\.directroy: unknown key"),
    ('[chain]\nship = true\ndirectory = "/x"\nkey = "k-0123456789abcdef"\ninterval_s = 0',
     r"chain\.interval_s: a number >= 0\.1"),
])
def test_bad_chain_table_is_one_line_naming_the_field(config_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                       table: str, message: str) -> None:
    monkeypatch.delenv("FLOORWALKER_CHAIN_KEY", raising=False)
    path = _chain_table(config_dir, table)
    with pytest.raises(ConfigError, match=message) as info:
        load_store(path)
    assert "\n" not in str(info.value)
