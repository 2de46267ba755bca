"""Hostile configuration files: the loader raises ConfigError naming the file, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import load_device, load_store
from agent.errors import ConfigError
from tests.conftest import CONFIG_DIR
from tests.fuzz.budget import fuzz_settings

pytestmark = pytest.mark.fuzz

STORE = (CONFIG_DIR / "store.toml").read_text()
DEVICE = (CONFIG_DIR / "devices" / "agent-1.toml").read_text()


def _mutate(text: str, data: st.DataObject) -> str:
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["delete", "replace-value", "garbage", "duplicate"]))
        if action == "delete":
            lines.pop(i)
        elif action == "replace-value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            value = data.draw(st.sampled_from(['""', "-1", "1e999", "nan", "true", "[]", "[1]", "[[1,2]]", "{}",
                                               '"x"', "99999999999999999999", "0", "[[0,0],[0,0],[0,0]]"]))
            lines[i] = f"{key}= {value}"
        elif action == "garbage":
            lines[i] = data.draw(st.text(max_size=40))
        else:
            lines.insert(i, lines[i])
        if not lines:
            break
    return "\n".join(lines)


@fuzz_settings(3.0)
@given(st.data())
def test_mutated_store_file(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    directory = tmp_path_factory.mktemp("store")
    for name in ("customers.json", "coupons.json", "offers.toml", "store-plan-pts.png"):
        (directory / name).symlink_to(CONFIG_DIR / name)
    path = directory / "store.toml"
    path.write_text(_mutate(STORE, data))
    try:
        load_store(path)
    except ConfigError as exc:
        assert str(path) in str(exc)


@fuzz_settings(3.0)
@given(st.data())
def test_mutated_device_file(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    directory = tmp_path_factory.mktemp("device")
    path = directory / "agent-1.toml"
    path.write_text(_mutate(DEVICE, data).replace('store = "../store.toml"', f'store = "{CONFIG_DIR / "store.toml"}"'))
    try:
        load_device(path)
    except ConfigError as exc:
        assert "agent-1.toml" in str(exc) or "store.toml" in str(exc)


@fuzz_settings()
@given(st.binary(max_size=1024))
def test_random_bytes_store(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("raw") / "store.toml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError):
        load_store(path)
