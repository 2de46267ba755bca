"""deploy/install-agent.sh and deploy/install-aggregator.sh, always into a scratch root (--root).

Idempotence is checked as the user sees it: a second run leaves exactly the same tree (paths,
modes, contents, symlinks), an edited configuration file survives, --uninstall takes away what
the install added and keeps the store's configuration, --purge leaves nothing.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from agent.config import load_device, load_store
from tests.deploy.conftest import DEPLOY, REPO, run

pytestmark = pytest.mark.deploy

AGENT = DEPLOY / "install-agent.sh"
AGGREGATOR = DEPLOY / "install-aggregator.sh"

AGENT_FILES = {
    "etc/floorwalker/agent.env", "etc/floorwalker/ca.crt",
    "etc/floorwalker/store.toml", "etc/floorwalker/offers.toml", "etc/floorwalker/customers.json",
    "etc/floorwalker/coupons.json", "etc/floorwalker/store-plan-pts.png",
    "etc/floorwalker/devices/agent-1.toml", "etc/floorwalker/devices/agent-1.env",
    "etc/floorwalker/devices/pi-7.toml", "etc/floorwalker/devices/pi-7.env",
    "etc/systemd/system/floorwalker-agent@.service",
    "etc/systemd/system/multi-user.target.wants/floorwalker-agent@agent-1.service",
    "etc/systemd/system/multi-user.target.wants/floorwalker-agent@pi-7.service",
    "usr/lib/sysusers.d/floorwalker-agent.conf", "usr/lib/tmpfiles.d/floorwalker.conf",
}
AGGREGATOR_FILES = {
    "etc/floorwalker/aggregator.env", "etc/floorwalker/ca.crt",
    "etc/floorwalker/store.toml", "etc/floorwalker/offers.toml", "etc/floorwalker/customers.json",
    "etc/floorwalker/coupons.json", "etc/floorwalker/store-plan-pts.png",
    "etc/systemd/system/floorwalker-aggregator.service",
    "etc/systemd/system/multi-user.target.wants/floorwalker-aggregator.service",
    "usr/lib/sysusers.d/floorwalker-aggregator.conf", "usr/lib/tmpfiles.d/floorwalker.conf",
}
# What a mistaken install onto this machine would have created; the tests must never do that.
REAL_PATHS = ("/etc/floorwalker", "/opt/floorwalker", "/var/lib/floorwalker",
              "/etc/systemd/system/floorwalker-agent@.service", "/etc/systemd/system/floorwalker-aggregator.service")


def snapshot(root: Path) -> dict[str, tuple[str, ...]]:
    """Every path under root with its kind, mode and content hash (or symlink target)."""
    tree: dict[str, tuple[str, ...]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            tree[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            tree[rel] = ("dir", oct(path.stat().st_mode & 0o7777))
        else:
            tree[rel] = ("file", oct(path.stat().st_mode & 0o7777), hashlib.sha256(path.read_bytes()).hexdigest())
    return tree


def files(root: Path) -> set[str]:
    return {k for k, v in snapshot(root).items() if v[0] != "dir"}


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "store-ca.crt"
    path.write_text("-----BEGIN CERTIFICATE-----\nnot checked by the installer\n-----END CERTIFICATE-----\n")
    return path


@pytest.fixture(autouse=True)
def real_system_untouched() -> None:
    before = {p: os.path.lexists(p) for p in REAL_PATHS}
    yield
    assert {p: os.path.lexists(p) for p in REAL_PATHS} == before, "a deploy test touched the real system"


def install_agent(root: Path, ca_file: Path, *extra: str):
    return run(AGENT, "--root", root, "--no-venv", "--agent", "agent-1", "--agent", "pi-7", "--ca", ca_file, *extra)


def test_agent_install_twice_gives_the_same_tree(tmp_path, ca_file) -> None:
    root = tmp_path / "root"
    first = install_agent(root, ca_file)
    tree = snapshot(root)
    assert files(root) == AGENT_FILES
    assert "step 6/6" in first.stdout and "done: agent installed" in first.stdout
    second = install_agent(root, ca_file)
    assert snapshot(root) == tree
    assert ": created" not in second.stdout and ": updated" not in second.stdout
    assert tree["var/lib/floorwalker"] == ("dir", "0o750")
    assert tree["etc/floorwalker/devices/pi-7.env"][1] == "0o640"  # holds a password
    assert tree["etc/systemd/system/multi-user.target.wants/floorwalker-agent@pi-7.service"] == (
        "link", "/etc/systemd/system/floorwalker-agent@.service")


def test_aggregator_install_twice_gives_the_same_tree(tmp_path, ca_file) -> None:
    root = tmp_path / "root"
    run(AGGREGATOR, "--root", root, "--no-venv", "--ca", ca_file)
    tree = snapshot(root)
    assert files(root) == AGGREGATOR_FILES
    run(AGGREGATOR, "--root", root, "--no-venv", "--ca", ca_file)
    assert snapshot(root) == tree
    env = (root / "etc/floorwalker/aggregator.env").read_text()
    token = next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("FLOORWALKER_API_TOKEN="))
    assert len(token) == 48 and "@" not in token


def test_installed_configuration_is_valid(tmp_path, ca_file) -> None:
    root = tmp_path / "root"
    install_agent(root, ca_file)
    etc = root / "etc/floorwalker"
    store = load_store(etc / "store.toml")
    assert load_device(etc / "devices/agent-1.toml", store=store).agent_id == "agent-1"
    # a Pi without a demo device file gets one made from agent-1.toml, with its own id
    assert load_device(etc / "devices/pi-7.toml", store=store).agent_id == "pi-7"
    assert "MQTT_USERNAME=pi-7\n" in (etc / "devices/pi-7.env").read_text()


def test_an_edited_configuration_is_never_overwritten(tmp_path, ca_file) -> None:
    root = tmp_path / "root"
    install_agent(root, ca_file)
    store = root / "etc/floorwalker/store.toml"
    edited = store.read_text().replace('secret = "', 'secret = "edited-for-this-store-')
    store.write_text(edited)
    out = install_agent(root, ca_file).stdout
    assert store.read_text() == edited
    assert "/etc/floorwalker/store.toml: kept your edited file" in out


def test_uninstall_keeps_configuration_and_purge_removes_everything(tmp_path, ca_file) -> None:
    root = tmp_path / "root"
    install_agent(root, ca_file)
    run(AGGREGATOR, "--root", root, "--no-venv")
    out = run(AGENT, "--root", root, "--uninstall").stdout
    left = files(root)
    assert not {f for f in left if "floorwalker-agent" in f}
    assert "etc/systemd/system/floorwalker-aggregator.service" in left
    assert "kept (floorwalker-aggregator.service is still installed)" in out
    run(AGGREGATOR, "--root", root, "--uninstall")
    assert files(root) == {f for f in AGENT_FILES | AGGREGATOR_FILES if f.startswith("etc/floorwalker/")}
    run(AGGREGATOR, "--root", root, "--purge")
    assert files(root) == set()
    assert not (root / "etc/floorwalker").exists() and not (root / "var/lib/floorwalker").exists()


def test_uninstall_twice_is_harmless(tmp_path, ca_file) -> None:
    root = tmp_path / "root"
    install_agent(root, ca_file)
    run(AGENT, "--root", root, "--purge")
    run(AGENT, "--root", root, "--purge")
    assert files(root) == set()


@pytest.mark.parametrize("args, message", [
    (["--agent", "bad/id"], "--agent 'bad/id': letters, digits"),
    (["--bogus"], "unknown option --bogus"),
    (["--ca", "/nonexistent/ca.crt"], "--ca /nonexistent/ca.crt: no such file"),
    (["--root"], "--root needs a directory"),
])
def test_bad_options_fail_with_one_clear_line(tmp_path, args, message) -> None:
    if args != ["--root"]:
        args = ["--root", str(tmp_path / "root"), "--no-venv", *args]
    proc = run(AGENT, *args, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(f"install-agent.sh: error: {message}")
    assert not (tmp_path / "root" / "etc").exists()


def readable_copy_of_the_agent_installer(base: Path) -> Path:
    """The agent installer with what it reads before its root check (lib/, pyproject.toml), in a
    world-readable directory: the checkout itself may lie in a private one (a clone in ``mktemp -d``,
    mode 700), which ``nobody`` cannot enter, and the test must not depend on where the clone lies."""
    base.chmod(0o755)
    (base / "deploy").mkdir(mode=0o755)
    shutil.copy2(REPO / "pyproject.toml", base / "pyproject.toml")
    shutil.copytree(DEPLOY / "lib", base / "deploy" / "lib")
    shutil.copy2(AGENT, base / "deploy" / AGENT.name)
    for path in [base / "pyproject.toml", *(base / "deploy").rglob("*")]:
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    return base / "deploy" / AGENT.name


def test_installing_onto_the_machine_needs_root() -> None:
    if os.geteuid() == 0:
        # As root it would really install: prove the guard with an unprivileged user instead.
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("no 'nobody' user to run the installer unprivileged")
        # Not pytest's tmp_path: its directories are private (0700) too. /tmp itself is world-traversable.
        base = Path(tempfile.mkdtemp(prefix="fw-install-", dir="/tmp"))
        try:
            script = readable_copy_of_the_agent_installer(base)
            proc = run("setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                       script, "--no-venv", check=False)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    else:
        proc = run(AGENT, "--no-venv", check=False)
    assert proc.returncode == 1
    assert "needs root: run it with sudo (or use --root DIR)" in proc.stderr
