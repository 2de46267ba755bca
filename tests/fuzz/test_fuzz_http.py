"""The HTTP API fuzzed from its own OpenAPI description (schemathesis), against a real server.

The aggregator (``create_app``) runs on a free port in a background thread (aiohttp is not ASGI,
so schemathesis talks to it over HTTP like any client), connected to a real mosquitto and a real
SQLite file that already holds a few shoppers. schemathesis generates requests for every
operation in ``/api/openapi.json`` — valid ones and deliberately invalid ones (negative mode).

Asserted for every case: never a 5xx; the status code is one the description lists for the
operation; a JSON body matches the response schema the description gives for that status.
Rejections (4xx) are counted by status and printed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agent.config import MqttSettings
from aggregator.app import create_app
from aggregator.appkeys import INGEST, LINK
from aggregator.embedded_broker import Broker, free_port
from aggregator.settings import Settings
from tests.aggregator import agents
from tests.conftest import CONFIG_DIR
from tests.fuzz.budget import cases
from tests.mqtt_helpers import publish

pytestmark = [pytest.mark.fuzz, pytest.mark.broker, pytest.mark.timeout(1800)]

POSITIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Invalid requests: the answer must still be documented and well-formed, but which 4xx is the server's call.
NEGATIVE_CHECKS = [not_a_server_error, response_schema_conformance]


class ServerThread:
    """An aiohttp application served by ``web.AppRunner`` on its own loop in a thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-http-server", daemon=True)
        self.runner = web.AppRunner(app, access_log=None)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, coro, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    async def _start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def start(self) -> ServerThread:
        self.thread.start()
        self._run(self._start())
        return self

    def wait(self, predicate, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while not self._run(_call(predicate)):
            assert time.monotonic() < deadline, "server condition not met"
            time.sleep(0.05)

    def stop(self) -> None:
        try:
            self._run(self.runner.cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


async def _call(predicate):  # type: ignore[no-untyped-def]
    return predicate()


def test_http_api_fuzzed_from_its_openapi_description(mqtt_broker: Broker, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    settings_ = replace(Settings(), config_dir=CONFIG_DIR, db_path=tmp_path / "fuzz.db",
                        mqtt=MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port),
                        client_id=f"agg-fuzz-{tmp_path.name[-12:]}", api_token="")
    server = ServerThread(create_app(settings_)).start()
    session = requests.Session()
    try:
        server.wait(lambda: server.app[LINK].subscribed)
        t0 = time.time() - 60
        traffic = agents.visit("d-fuzz-1", t0, path=[(550.0, 600.0)] * 3)  # a finished visit
        traffic.append(agents.link("agent-1", 99, t0, "d-fuzz-2", "3"))
        traffic += agents.visit("d-fuzz-2", t0, seq0=200, path=[(700.0, 700.0)] * 3)[:-4]  # still inside
        publish(mqtt_broker.host, mqtt_broker.port, traffic)
        server.wait(lambda: server.app[INGEST].counters.acked >= len(traffic) - 1)

        spec = session.get(f"{server.base_url}/api/openapi.json", timeout=10).json()
        schema = schemathesis.openapi.from_dict(spec)
        strategy = st.one_of(
            st.tuples(st.just(True), schema.as_strategy(schemathesis.GenerationMode.POSITIVE)),
            st.tuples(st.just(False), schema.as_strategy(schemathesis.GenerationMode.NEGATIVE)),
        )
        statuses: Counter[str] = Counter()
        operations: Counter[str] = Counter()

        @settings(max_examples=cases(3.0), deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def one(item: tuple[bool, schemathesis.Case]) -> None:
            positive, case = item
            response = case.call(base_url=server.base_url, session=session, timeout=10)
            statuses[f"{response.status_code // 100}xx" if response.status_code < 400 else
                     str(response.status_code)] += 1
            operations[case.operation.label] += 1
            case.validate_response(response, checks=POSITIVE_CHECKS if positive else NEGATIVE_CHECKS)

        one()
        total = sum(statuses.values())
        request.node.user_properties.append(("fuzz_cases", total))
        print(f"\nfuzz-http: {total} requests over {len(operations)} operations; answers by status: "
              f"{dict(sorted(statuses.items()))}")
        assert not any(s.startswith("5") for s in statuses)
        described = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item
                     if m in {"get", "post", "put", "delete", "patch"}}
        if total >= 20 * len(described):  # with a budget that large, every operation must have been reached
            assert set(operations) == described, described - set(operations)
        # The server stayed healthy throughout: nothing the fuzzer sent broke ingest or the database.
        health = session.get(f"{server.base_url}/health", timeout=10)
        assert health.status_code == 200, health.text
    finally:
        session.close()
        server.stop()
