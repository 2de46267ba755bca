"""A store broker bridged to a chain broker, both real mosquitto set up by floorwalker-broker.sh:
only occupancy and availability cross, over TLS, and the chain broker's ACL refuses the rest."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator.embedded_broker import Broker, find_mosquitto, free_port
from tests.deploy.conftest import BROKER_SCRIPT, run, start_store_broker
from tests.deploy.mqtt_tls import Session

pytestmark = pytest.mark.deploy
STORE = "s1"


@dataclass
class Pair:
    chain_dir: Path
    chain_port: int
    store_dir: Path
    store_port: int
    brokers: list[Broker]


def _broker_dir(base: Path, name: str, port: int, accounts: list[tuple[str, str, str]]) -> Path:
    directory = base / name
    run(BROKER_SCRIPT, "init", "--dir", directory, "--port", str(port), "--host", "localhost")
    for account, role, password in accounts:
        run(BROKER_SCRIPT, "add-account", account, "--role", role, "--password", password, "--dir", directory)
    return directory


def _run_dir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("mosquitto")
            os.chown(path, pw.pw_uid, pw.pw_gid)
        except KeyError:
            pass
    return path


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: the bridge tests need the real broker")
    base = Path(tempfile.mkdtemp(prefix="fw-deploy-chain-"))
    base.chmod(0o755)  # mosquitto drops to its own user and must reach the files
    brokers: list[Broker] = []
    try:
        chain_port, store_port = free_port(), free_port()
        chain = _broker_dir(base, "chain", chain_port, [(STORE, "store", "pw-store"), ("s2", "store", "pw-s2"),
                                                       ("viewer", "chain-reader", "pw-viewer")])
        store = _broker_dir(base, "store", store_port, [("aggregator", "aggregator", "pw-agg"),
                                                        ("agent-1", "agent", "pw-agent")])
        run(BROKER_SCRIPT, "add-bridge", "--store", STORE, "--remote", f"localhost:{chain_port}", "--remote-ca",
            chain / "ca.crt", "--username", STORE, "--password", "pw-store", "--dir", store)
        brokers.append(start_store_broker(chain, chain_port, _run_dir(base, "chain-run")))
        brokers.append(start_store_broker(store, store_port, _run_dir(base, "store-run")))
        yield Pair(chain, chain_port, store, store_port, brokers)
    finally:
        for b in brokers:
            b.stop()
        shutil.rmtree(base, ignore_errors=True)


def _session(directory: Path, port: int, user: str, password: str) -> Session:
    return Session(port, username=user, password=password, ca_file=str(directory / "ca.crt"))


def test_only_occupancy_and_availability_cross_the_bridge(pair: Pair) -> None:
    with _session(pair.chain_dir, pair.chain_port, "viewer", "pw-viewer") as viewer, \
            _session(pair.store_dir, pair.store_port, "aggregator", "pw-agg") as aggregator, \
            _session(pair.store_dir, pair.store_port, "agent-1", "pw-agent") as agent:
        viewer.subscribe("floorwalker/#", "customer/#")
        agent.publish(f"floorwalker/{STORE}/agents/agent-1/enter", b'{"device": "d"}')  # agent tier: stays home
        aggregator.publish("customer/enter", b'{"id": 1, "ts": 1}')  # customer tier: stays home
        aggregator.publish(f"floorwalker/{STORE}/scenario", b"{}")
        agent.publish(f"floorwalker/{STORE}/agents/agent-1/status", b'{"state": "online"}')
        aggregator.publish(f"floorwalker/{STORE}/occupancy/sport", b'{"people": 3}')
        aggregator.publish(f"floorwalker/{STORE}/occupancy", b'{"people": 12}')  # the last: once it arrives ...
        got = viewer.wait_for(3, timeout_s=30)  # the bridge connects within restart_timeout
        topics = [m.topic for m in got]
        assert f"floorwalker/{STORE}/occupancy" in topics
        assert set(topics) == {f"floorwalker/{STORE}/agents/agent-1/status", f"floorwalker/{STORE}/occupancy/sport",
                               f"floorwalker/{STORE}/occupancy"}  # ... nothing else came before it


def test_chain_acl_refuses_a_store_everything_but_its_own_occupancy_topics(pair: Pair) -> None:
    with _session(pair.chain_dir, pair.chain_port, "viewer", "pw-viewer") as viewer, \
            _session(pair.chain_dir, pair.chain_port, "s2", "pw-s2") as s2:
        viewer.subscribe("#")
        for topic in (f"floorwalker/{STORE}/occupancy", "floorwalker/s2/agents/agent-1/enter", "customer/enter",
                      "floorwalker/s2/scenario", "floorwalker/s2/occupancy/a/b", "$SYS/x"):
            s2.publish(topic, b'{"people": 99}')
        s2.publish("floorwalker/s2/occupancy", b'{"people": 5}')
        got = viewer.wait_for(1, timeout_s=10)
        assert [(m.topic, m.payload) for m in got if m.topic.startswith("floorwalker/s2")] == [
            ("floorwalker/s2/occupancy", b'{"people": 5}')]
        assert not [m for m in got if m.payload == b'{"people": 99}']


def test_a_chain_reader_cannot_publish(pair: Pair) -> None:
    with _session(pair.chain_dir, pair.chain_port, "viewer", "pw-viewer") as viewer, \
            _session(pair.chain_dir, pair.chain_port, STORE, "pw-store") as store:
        viewer.subscribe("floorwalker/+/occupancy")
        viewer.publish("floorwalker/s9/occupancy", b'{"people": 1}')
        store.publish(f"floorwalker/{STORE}/occupancy", b'{"people": 2}')
        got = viewer.wait_for(1, timeout_s=10)
        assert [m.topic for m in got if m.topic == "floorwalker/s9/occupancy"] == []
