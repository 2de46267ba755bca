"""floorwalker-broker.sh as an administration tool: idempotent, explicit, clear when misused.

(That mosquitto enforces what it writes is test_broker_security.py's job.)
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import BROKER_SCRIPT, run

pytestmark = pytest.mark.deploy


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def broker_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "broker"
    run(BROKER_SCRIPT, "init", "--dir", directory, "--port", "18883", "--host", "broker.store.lan",
        "--host", "192.168.1.10")
    return directory


def test_init_twice_keeps_the_ca_and_server_certificate(broker_dir) -> None:
    before = {name: digest(broker_dir / name) for name in ("ca.crt", "ca.key", "server.crt", "server.key")}
    out = run(BROKER_SCRIPT, "init", "--dir", broker_dir, "--port", "18883").stdout
    assert {name: digest(broker_dir / name) for name in before} == before
    assert "store CA: kept" in out and "server certificate: kept" in out
    assert oct((broker_dir / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_server_certificate_is_signed_by_the_ca_for_every_name(broker_dir) -> None:
    verify = subprocess.run(["openssl", "verify", "-CAfile", broker_dir / "ca.crt", broker_dir / "server.crt"],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    san = subprocess.run(["openssl", "x509", "-in", broker_dir / "server.crt", "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True).stdout
    for name in ("DNS:broker.store.lan", "IP Address:192.168.1.10", "DNS:localhost", "IP Address:127.0.0.1"):
        assert name in san


def test_accounts_are_kept_unless_a_password_is_given(broker_dir) -> None:
    first = run(BROKER_SCRIPT, "add-account", "agent-1", "--dir", broker_dir).stdout
    password = next(line.split("=", 1)[1] for line in first.splitlines() if line.startswith("password="))
    assert len(password) >= 16
    hashed = digest(broker_dir / "passwd")
    again = run(BROKER_SCRIPT, "add-account", "agent-1", "--dir", broker_dir).stdout
    assert "kept" in again and "password=" not in again and digest(broker_dir / "passwd") == hashed
    run(BROKER_SCRIPT, "add-account", "agent-1", "--password", "new-one", "--dir", broker_dir)
    assert digest(broker_dir / "passwd") != hashed
    assert run(BROKER_SCRIPT, "list", "--dir", broker_dir).stdout.split() == ["agent-1", "agent"]
    acl = (broker_dir / "acl").read_text()
    assert "user agent-1\ntopic write floorwalker/+/agents/agent-1/#\ntopic read floorwalker/+/scenario" in acl
    rules = [line for line in acl.splitlines() if line and not line.startswith("#")]
    assert not [r for r in rules if r.startswith("pattern")]  # explicit rules only (see docs/DEPLOY.md)


def test_client_certificate_is_issued_by_the_store_ca(broker_dir) -> None:
    run(BROKER_SCRIPT, "add-account", "agent-3", "--client-cert", "--dir", broker_dir)
    crt = broker_dir / "clients/agent-3.crt"
    verify = subprocess.run(["openssl", "verify", "-CAfile", broker_dir / "ca.crt", "-purpose", "sslclient", crt],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    subject = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-subject"], capture_output=True, text=True)
    assert "CN = agent-3" in subject.stdout


@pytest.mark.parametrize("args, message", [
    (["add-account", "agent/1"], "account name 'agent/1': letters, digits"),
    (["add-account", "agent-1", "--role", "admin"],
     "--role: agent, aggregator, reader, store or chain-reader, got 'admin'"),
    (["init", "--port", "99999"], "--port: a TCP port, got 99999"),
    (["frobnicate"], "unknown command 'frobnicate'"),
])
def test_mistakes_fail_with_one_clear_line(broker_dir, args, message) -> None:
    extra = ["--dir", str(broker_dir)] if args[0] != "frobnicate" else []
    proc = run(BROKER_SCRIPT, *args, *extra, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"floorwalker-broker.sh: error: {message}")


def test_a_role_cannot_change_silently(broker_dir) -> None:
    run(BROKER_SCRIPT, "add-account", "viewer", "--role", "reader", "--dir", broker_dir)
    proc = run(BROKER_SCRIPT, "add-account", "viewer", "--role", "aggregator", "--dir", broker_dir, check=False)
    assert proc.returncode == 1 and "exists with role 'reader'" in proc.stderr
    assert "topic read customer/#" in (broker_dir / "acl").read_text()


def test_accounts_before_init_are_refused(tmp_path) -> None:
    proc = run(BROKER_SCRIPT, "add-account", "agent-1", "--dir", tmp_path / "nothing", check=False)
    assert proc.returncode == 1 and "run 'floorwalker-broker.sh init' first" in proc.stderr
