"""The pages in headless Chromium against the real system: mosquitto, `floorwalker-aggregator serve`
and four `floorwalker-agent mock` processes, started once for the tests/browser package (they take
seconds) and stopped after its last test. Package scope, not session: sync Playwright keeps an event
loop running while it is open, which would break every async test after it, and this package has
only sync tests.

The aggregator runs with an API token, as every installed one does: the module's browser context
logs in once through the login page, and every page after that works on the session cookie alone
(no token in any URL): the pages, their assets, fetches and WebSockets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aggregator.embedded_broker import Broker, free_port, start_mosquitto
from tests.conftest import CONFIG_DIR, REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]
ARTIFACTS = REPO / "test-artifacts"
TOKEN = "browser-test-token-0123456789"
AGENTS = ("agent-1", "agent-2", "agent-3", "agent-4")
# A loyalty customer whose name is an attack: it must be shown as text everywhere.
EVIL_ID = "666"
EVIL_NAME = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@dataclass
class System:
    base_url: str
    broker: Broker
    db_path: Path
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def get_json(self, path: str) -> object:
        req = urllib.request.Request(self.base_url + path, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def running_agents(self) -> set[str]:
        """The mock agents still running: test_map.py stops agent-4 to see it crossed out, and this
        system is shared by every browser test of the package."""
        return {agent for agent, proc in zip(AGENTS, self.procs[1:], strict=False) if proc.poll() is None}

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.workdir.glob("*.log")))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the aggregator exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer in {timeout_s} s") from None
            time.sleep(0.1)


@pytest.fixture(scope="package")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    workdir = tmp_path_factory.mktemp("map-system")
    customers = json.loads((CONFIG_DIR / "customers.json").read_text())
    customers.append({"customer_id": int(EVIL_ID), "name": EVIL_NAME, "gender": "F", "age": 30})
    customers_file = workdir / "customers.json"
    customers_file.write_text(json.dumps(customers))
    broker = start_mosquitto(workdir=workdir / "mosquitto")
    port = free_port()
    env = dict(os.environ, MQTT_HOST=broker.host, MQTT_PORT=str(broker.port), FLOORWALKER_API_TOKEN=TOKEN,
               FLOORWALKER_CONFIG_DIR=str(CONFIG_DIR), CUSTOMERS_LIST_FILE=str(customers_file),
               FLOORWALKER_STATE_DIR=str(workdir / "var"), FLOORWALKER_DWELL_S="2", PYTHONUNBUFFERED="1",
               LOG_LEVEL="INFO")
    env.pop("FLOORWALKER_STORE_SECRET", None)  # agents and aggregator share the demo store's secret
    db = workdir / "floorwalker.db"
    sysm = System(f"http://127.0.0.1:{port}", broker, db, workdir)
    try:
        agg_log = workdir / "aggregator.log"
        with open(agg_log, "ab") as err:
            sysm.procs.append(subprocess.Popen(
                [sys.executable, "-m", "aggregator.cli", "serve", "--port", str(port), "--db", str(db)],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err))
        _wait_http(f"{sysm.base_url}/health", 30, sysm.procs[0], agg_log)
        for agent in AGENTS:
            with open(workdir / f"{agent}.log", "ab") as err:
                device = CONFIG_DIR / "devices" / f"{agent}.toml"
                sysm.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "agent.cli", "mock", "--config", str(device),
                     "--seed", "7", "--shoppers", "12"],
                    cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err))
        yield sysm
    finally:
        for proc in reversed(sysm.procs):
            _stop(proc)
        broker.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (the browser tests need it)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def log_in(page: object, system: System, token: str = TOKEN) -> None:
    """Sign in on the login page the way a person does: type the token, press the button."""
    page.fill("#token", token)  # type: ignore[attr-defined]
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click("form.login-form button[type=submit]")  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def session(browser: object) -> Iterator[object]:
    """One browser context (one cookie jar) for the module: the map tab logs it in."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    try:
        yield context
    finally:
        context.close()


class Tab:
    """A page that records console errors, page errors and requests leaving the server."""

    def __init__(self, context: object, system: System, path: str, viewport: dict[str, int] | None = None,
                 *, log_in_as: str | None = None) -> None:
        self.errors: list[str] = []
        self.external: list[str] = []
        self.page = context.new_page()  # type: ignore[attr-defined]
        self.page.set_viewport_size(viewport or {"width": 1400, "height": 900})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: None if r.url.startswith((system.base_url, "ws://127.0.0.1", "data:"))
                     else self.external.append(r.url))
        self.page.goto(system.url(path))
        if log_in_as is not None:
            assert self.page.url.startswith(f"{system.base_url}/login?next="), self.page.url
            log_in(self.page, system, log_in_as)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def close(self) -> None:
        self.page.close()


@pytest.fixture(scope="module")
def map_tab(session: object, system: System) -> Iterator[Tab]:
    """The map page, opened once for the module through the login page (tests run in file order and
    build on each other); its context keeps the session for the other tabs."""
    tab = Tab(session, system, "/", log_in_as=TOKEN)
    tab.page.wait_for_function("window.__fw && window.__fw.ready", timeout=20_000)
    try:
        yield tab
    finally:
        tab.close()
