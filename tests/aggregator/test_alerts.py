"""Webhook alerts from the store file's rules, posted to a local aiohttp receiver (the outside world here)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.config import load_store
from agent.contract import agent_topic
from agent.errors import ConfigError
from aggregator.alerts import ALERTS
from aggregator.app import create_app
from aggregator.appkeys import LINK
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from tests.aggregator import agents
from tests.aggregator.conftest import wait_until
from tests.mqtt_helpers import publish

pytestmark = pytest.mark.broker


class Receiver:
    """A webhook receiver: keeps every JSON body; answers ``fail_first`` posts with 503 first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.refused = 0
        self.fail_first = fail_first
        self.app = web.Application()
        self.app.router.add_post("/hook/secret-token", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        if self.refused < self.fail_first:
            self.refused += 1
            return web.Response(status=503)
        self.bodies.append(await request.json())
        return web.Response(status=204)

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        return [b["alert"] for b in self.bodies if state is None or b["alert"]["state"] == state]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_rules(config_dir: Path, port: int, rules: str, fmt: str = "json") -> Path:
    store = config_dir / "store.toml"
    store.write_text(store.read_text() + f'\n[alerts]\nwebhook_url = "http://127.0.0.1:{port}/hook/secret-token"\n'
                                          f'format = "{fmt}"\n{rules}')
    return config_dir


async def start(aiohttp_client, settings: Settings, config_dir: Path):  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(replace(settings, config_dir=config_dir)))
    client.app[ALERTS].outbox.retry_min_s = 0.05  # the back-off's first step, short for the test
    await wait_until(lambda: client.app[LINK].subscribed)
    return client


OCCUPANCY = """
[[alerts.rules]]
name = "store-busy"
kind = "occupancy"
max_people = 0
for_s = 0
[[alerts.rules]]
name = "womens-busy"
kind = "occupancy"
zone = "Women's"
max_people = 0
for_s = 0
[[alerts.rules]]
name = "never"
kind = "occupancy"
max_people = 0
for_s = 3600
"""


async def test_occupancy_fires_and_recovers_with_a_hold_off(aiohttp_client, aiohttp_server, settings: Settings,
                                                           mqtt_broker: Broker, config_dir: Path) -> None:
    receiver = Receiver(fail_first=2)
    server = await aiohttp_server(receiver.app)
    client = await start(aiohttp_client, settings, with_rules(config_dir, server.port, OCCUPANCY))
    t0 = time.time()
    visit = agents.visit("d-busy", t0, step_s=0.5)  # every agent hears it: fused into the Women's zone
    stay, leave = visit[:-len(agents.ALL_AGENTS)], visit[-len(agents.ALL_AGENTS):]
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, stay)
    await wait_until(lambda: {a["rule"] for a in receiver.alerts("firing")} == {"store-busy", "womens-busy"})
    assert receiver.refused == 2  # the first two posts were refused and retried
    fired = {a["rule"]: a for a in receiver.alerts("firing")}
    assert fired["store-busy"]["subject"] == "store" and fired["store-busy"]["value"] == 1
    assert fired["womens-busy"]["subject"] == "zone Women's" and fired["womens-busy"]["limit"] == 0
    assert all(b["text"].startswith("[Floorwalker demo] ALERT") for b in receiver.bodies)
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, leave)
    await wait_until(lambda: {a["rule"] for a in receiver.alerts("recovered")} == {"store-busy", "womens-busy"})
    assert "never" not in {a["rule"] for a in receiver.alerts()}  # its hold-off (1 h) never passed
    listing = await (await client.get("/api/alerts")).json()
    assert [a["state"] for a in listing["items"]][:2] == ["recovered", "recovered"]
    assert listing["firing"] == [] and listing["pending_posts"] == 0 and listing["failed_attempts"] == 2
    metrics = await (await client.get("/metrics")).text()
    assert "floorwalker_alert_posts_total 4.0" in metrics and "floorwalker_alerts_firing 0.0" in metrics


async def test_dead_letters_rising_posts_slack_shape(aiohttp_client, aiohttp_server, settings: Settings,
                                                     mqtt_broker: Broker, config_dir: Path) -> None:
    receiver = Receiver()
    server = await aiohttp_server(receiver.app)
    rules = '[[alerts.rules]]\nname = "rejects"\nkind = "dead-letters"\nmax_new = 2\nwindow_s = 600\n'
    await start(aiohttp_client, settings, with_rules(config_dir, server.port, rules, fmt="slack"))
    bad = [(agent_topic("demo", "agent-1", "move"), b"nope")] * 2
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, bad)
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, [(agent_topic("demo", "agent-2", "move"),
                                                                            b"[]")])
    await wait_until(lambda: len(receiver.bodies) == 1)
    assert receiver.bodies == [{"text": "[Floorwalker demo] ALERT rejects: 3 new dead letters (limit 2)"}]


async def test_agent_offline_survives_a_restart_until_delivered_and_recovered(
        aiohttp_client, aiohttp_server, settings: Settings, mqtt_broker: Broker, config_dir: Path) -> None:
    """The receiver is down when the alert fires: the post waits in the state file through a restart."""
    port = free_port()
    rules = '[[alerts.rules]]\nname = "pi-down"\nkind = "agent-offline"\nagent = "agent-3"\nminutes = 0\n'
    config = with_rules(config_dir, port, rules)
    status = agent_topic("demo", "agent-3", "status")
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port,
                            [(status, b'{"agent":"agent-3","state":"offline","ts":1.0}')], retain=True)
    first = await start(aiohttp_client, settings, config)
    alerts = first.app[ALERTS]
    await wait_until(lambda: "pi-down:agent-3" in alerts.firing and alerts.outbox.failures >= 1)
    await first.close()
    state_file = settings.db_path.with_name(settings.db_path.name + "-alerts.json")
    saved = json.loads(state_file.read_text())
    assert len(saved["pending"]) == 1 and "pi-down:agent-3" in saved["firing"]

    receiver = Receiver()
    await aiohttp_server(receiver.app, port=port)
    second = await start(aiohttp_client, settings, config)
    await wait_until(lambda: len(receiver.bodies) == 1)
    assert len(receiver.alerts()) == 1 and receiver.alerts()[0]["state"] == "firing"
    assert receiver.alerts()[0]["subject"] == "agent agent-3"
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port,
                            [(status, b'{"agent":"agent-3","state":"online","ts":2.0}')], retain=True)
    await wait_until(lambda: len(receiver.bodies) == 2)
    assert receiver.alerts()[1]["state"] == "recovered" and receiver.alerts()[1]["rule"] == "pi-down"
    assert second.app[ALERTS].firing == {}


@pytest.mark.parametrize(("rules", "field"), [
    ('[[alerts.rules]]\nkind = "occupancy"\nmax_people = 5\nzone = "Garden"\n', "alerts.rules[0].zone"),
    ('[[alerts.rules]]\nkind = "sometimes"\n', "alerts.rules[0].kind"),
    ('[[alerts.rules]]\nkind = "agent-offline"\n', "alerts.rules[0].minutes"),
    ('[[alerts.rules]]\nkind = "occupancy"\nmax_people = -1\n', "alerts.rules[0].max_people"),
    ('[[alerts.rules]]\nkind = "dead-letters"\nmax_new = 1\nwndow_s = 5\n', "alerts.rules[0].wndow_s"),
])
def test_bad_rules_name_the_file_and_field(config_dir: Path, rules: str, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_store(with_rules(config_dir, 9, rules) / "store.toml")
    assert field in str(err.value) and "store.toml" in str(err.value)
    assert "\n" not in str(err.value)


def test_rules_need_a_url(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBHOOK_URL", raising=False)
    store = config_dir / "store.toml"
    store.write_text(store.read_text() + '\n[alerts]\n[[alerts.rules]]\nkind = "occupancy"\nmax_people = 3\n')
    with pytest.raises(ConfigError, match=r"alerts\.webhook_url"):
        load_store(store)
    monkeypatch.setenv("WEBHOOK_URL", "https://hooks.example.invalid/x")  # seed 002's variable
    assert load_store(store).alerts.webhook_url == "https://hooks.example.invalid/x"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def rules_of(config_dir: Path, rules: str) -> Any:
    return load_store(with_rules(config_dir, 9, rules) / "store.toml").alerts


def test_hold_off_window_and_every_agent_on_its_own(config_dir: Path, tmp_path: Path) -> None:
    """The rule engine alone, on a clock the test moves and inputs it sets (the aggregator's seams)."""
    from aggregator.alerts import Alerts

    config = rules_of(config_dir, '[[alerts.rules]]\nname = "full"\nkind = "occupancy"\nmax_people = 2\nfor_s = 60\n'
                                  '[[alerts.rules]]\nname = "pis"\nkind = "agent-offline"\nminutes = 5\n'
                                  '[[alerts.rules]]\nname = "dl"\nkind = "dead-letters"\nmax_new = 10\n'
                                  'window_s = 300\n')
    clock, people, states, dead = Clock(), [0], {"a1": "online", "a2": "unknown"}, [0]
    alerts = Alerts(config, "demo", tmp_path / "state.json", occupancy=lambda: (people[0], {}),
                    agents=lambda: states, dead_letters=lambda: dead[0], now=clock)

    def step(seconds: float) -> list[tuple[str, str]]:
        clock.now += seconds
        before = len(alerts.recent)
        alerts.evaluate()
        return [(a["rule"], a["state"]) for a in list(alerts.recent)[before:]]

    assert step(0) == []
    people[0] = 3
    assert step(59) == []  # over the limit, not yet for 60 s
    assert step(2) == []  # held 2 s of 60: the clock started when it went over
    assert step(59) == [("full", "firing")]
    assert step(30) == []  # once per episode
    people[0] = 1
    assert step(1) == [("full", "recovered")]
    states["a1"] = "offline"  # "unknown" (a2) never counts when every agent is watched
    assert step(1) == []  # seen offline: 5 minutes from now
    assert step(298) == []
    assert step(2) == [("pis", "firing")]
    assert alerts.firing["pis:a1"]["subject"] == "agent a1"
    states["a1"] = "online"
    assert step(1) == [("pis", "recovered")]
    dead[0] = 5
    assert step(100) == []
    dead[0] = 16  # 16 new within 300 s > 10
    assert step(100) == [("dl", "firing")]
    assert step(250) == []  # counted from the last sample before the window (5): 11 new, still over
    assert step(200) == [("dl", "recovered")]  # nothing new for 300 s
    assert len(alerts.outbox.pending) == 6  # every post waits for the webhook, none was sent here


def test_a_restart_does_not_call_an_alert_recovered_on_inputs_that_start_empty(config_dir: Path,
                                                                               tmp_path: Path) -> None:
    """The live occupancy and the dead-letter counter start from nothing after a restart: an alert that was
    firing recovers only once they had time to show it (a minute; a whole window), an agent's at once."""
    from aggregator.alerts import OCCUPANCY_WARMUP_S, Alerts

    config = rules_of(config_dir, '[[alerts.rules]]\nname = "full"\nkind = "occupancy"\nmax_people = 2\nfor_s = 10\n'
                                  '[[alerts.rules]]\nname = "pi"\nkind = "agent-offline"\nagent = "a1"\nminutes = 0\n'
                                  '[[alerts.rules]]\nname = "dl"\nkind = "dead-letters"\nmax_new = 1\n'
                                  'window_s = 300\n')
    clock, people, states, dead = Clock(), [5], {"a1": "offline"}, [0]

    def engine() -> Alerts:
        return Alerts(config, "demo", tmp_path / "state.json", occupancy=lambda: (people[0], {}),
                      agents=lambda: states, dead_letters=lambda: dead[0], now=clock)

    first = engine()
    first.evaluate()
    dead[0] = 5
    clock.now += 11
    first.evaluate()
    assert set(first.firing) == {"full", "pi:a1", "dl"}
    first.outbox.save()

    people[0], states["a1"], dead[0] = 0, "online", 0  # what a fresh aggregator sees in its first seconds
    clock.now += 30
    second = engine()
    second.load()
    assert set(second.firing) == {"full", "pi:a1", "dl"}

    def step(seconds: float) -> list[tuple[str, str]]:
        clock.now += seconds
        before = len(second.recent)
        second.evaluate()
        return [(a["rule"], a["state"]) for a in list(second.recent)[before:]]

    assert step(0) == [("pi", "recovered")]  # the agent's retained status is back at once
    assert step(OCCUPANCY_WARMUP_S - 1) == []  # the empty estimate is not believed yet
    assert step(1) == [("full", "recovered")]
    assert step(300 - OCCUPANCY_WARMUP_S - 1) == []
    assert step(1) == [("dl", "recovered")]  # a whole window without a new dead letter
    people[0] = 5
    assert step(1) == []  # over the limit again: its hold-off starts, as before the restart
    assert step(10) == [("full", "firing")]


async def test_posts_back_off_exponentially_up_to_the_cap_and_keep_their_order(aiohttp_server, tmp_path: Path) -> None:
    """The outbox against a receiver that refuses, then accepts: waits of 1, 2, 4, ... s capped at
    retry_max_s, the oldest post first, each post once."""
    import aiohttp

    from aggregator.alerts import WebhookOutbox

    receiver = Receiver(fail_first=9)
    server = await aiohttp_server(receiver.app)
    outbox = WebhookOutbox(f"http://127.0.0.1:{server.port}/hook/secret-token", tmp_path / "state.json",
                           retry_min_s=1.0, retry_max_s=60.0)
    outbox.add({"text": "first", "alert": {"n": 1}}, {})
    outbox.add({"text": "second", "alert": {"n": 2}}, {})
    now, waits = 1_000.0, []
    async with aiohttp.ClientSession() as session:
        wait = await outbox.deliver_due(session, now)  # due at once: tried, refused
        assert wait == 1.0
        for _ in range(8):
            assert await outbox.deliver_due(session, now + wait - 0.5) == 0.5  # not yet due: not tried
            now += wait
            wait = await outbox.deliver_due(session, now)
            waits.append(wait)
        assert receiver.refused == 9 and outbox.failures == 9
        assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
        now += 60.0
        await outbox.deliver_due(session, now)
    assert [b["text"] for b in receiver.bodies] == ["first", "second"] and outbox.posted == 2
    assert json.loads((tmp_path / "state.json").read_text())["pending"] == []


def test_each_format_is_what_its_receiver_reads() -> None:
    """Slack incoming webhooks read ``text``, Discord webhooks ``content``; plain JSON gets the fields too."""
    from aggregator.alerts import message, webhook_body

    alert = {"rule": "full", "kind": "occupancy", "state": "firing", "store": "demo", "subject": "zone Sport",
             "value": 9, "limit": 8, "since": 1.0, "ts": 2.0}
    text = message(alert)
    assert text == "[Floorwalker demo] ALERT full: zone Sport has 9 people (limit 8)"
    assert webhook_body("slack", alert, text) == {"text": text}
    assert webhook_body("discord", alert, text) == {"content": text}
    assert webhook_body("json", alert, text) == {"text": text, "alert": alert}
    recovered = message({**alert, "state": "recovered"})
    assert recovered == "[Floorwalker demo] RECOVERED full: zone Sport is back to normal"
    offline = message({**alert, "kind": "agent-offline", "subject": "agent agent-3", "value": 0, "limit": 5.0})
    assert offline == "[Floorwalker demo] ALERT full: agent agent-3 offline for 5 min"
