"""The aggregator's live occupancy: evidence from the agent tier, the estimate, the retained topics."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.config import area_pirs, load_deployment, load_store
from agent.contract import Door, Motion, Presence, Range, Rejection, agent_topic, decode_agent, encode_agent
from agent.occupancy import DEFAULT_TUNING
from agent.runtime import Pipeline
from agent.sources.parser import Probe, format_json
from aggregator.app import create_app
from aggregator.appkeys import INGEST, LINK
from aggregator.embedded_broker import Broker
from aggregator.occupancy_live import HOLD_GAPS, MIN_HOLD_S, PUBLISH_EVERY_S, STALE_S, LiveOccupancy
from aggregator.settings import Settings
from tests.aggregator.conftest import wait_until
from tests.conftest import CONFIG_DIR
from tests.mqtt_helpers import Collector, publish

STORE = load_store(CONFIG_DIR / "store.toml")
T0 = 1_795_435_593.0


@dataclass
class Published:
    """The outside world at the publisher seam: what went to the broker, in order."""

    items: list[tuple[str, dict, int, bool]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.items.append((topic, json.loads(payload), qos, retain))

    def on(self, topic: str) -> list[dict]:
        return [p for t, p, _, _ in self.items if t == topic]


def report(kind: str, agent: str, ts: float, device: str, *, device_kind: str = "person", seq: int = 0) -> Presence:
    ranges = (Range("s1", 600.0, 330.0, -60.0, 3.0),)
    return Presence(kind, f"{agent}:{seq}", agent, ts, device, 600.0, 330.0, 3.0, -60.0, 3.0, False, ranges,
                    device_kind)


def live() -> tuple[LiveOccupancy, Published]:
    out = Published()
    return LiveOccupancy(STORE, out, factor=1.0), out


def test_a_device_counts_while_it_reports_and_until_every_agent_said_goodbye() -> None:
    occ, _ = live()
    for i in range(10):  # d1 reports every 10 s, through agent-1 and agent-2
        occ.presence(report("move" if i else "enter", "agent-1", T0 + 10 * i, "d1"))
        occ.presence(report("move" if i else "enter", "agent-2", T0 + 10 * i + 0.1, "d1"))
    occ.presence(report("enter", "agent-1", T0 + 85, "d2"))
    assert occ.estimate(T0 + 95).evidence["devices"] == 2
    occ.presence(report("exit", "agent-1", T0 + 96, "d1"))
    assert occ.estimate(T0 + 97).evidence["devices"] == 2  # agent-2 still hears d1
    occ.presence(report("exit", "agent-2", T0 + 98, "d1"))
    assert occ.estimate(T0 + 99).evidence["devices"] == 1


def test_a_silent_device_stops_counting_after_a_few_of_its_gaps_and_counts_again_when_heard() -> None:
    occ, _ = live()
    for i in range(10):
        occ.presence(report("move" if i else "enter", "agent-1", T0 + 10 * i, "d1"))
    last = T0 + 90
    hold_s = occ.present["d1"].hold_s()
    assert MIN_HOLD_S <= hold_s <= HOLD_GAPS * 30  # a few of its ~10 s gaps, at least the floor
    assert occ.estimate(last + hold_s - 1).evidence["devices"] == 1
    assert occ.estimate(last + hold_s + 1).evidence["devices"] == 0  # no exit yet: gone from the count
    occ.presence(report("move", "agent-1", last + hold_s + 5, "d1"))
    assert occ.estimate(last + hold_s + 6).evidence["devices"] == 1


def test_a_device_that_reports_rarely_is_held_longer() -> None:
    occ, _ = live()
    for i in range(6):  # a staff phone in a pocket: a report every two minutes
        occ.presence(report("move" if i else "enter", "agent-1", T0 + 120 * i, "d1"))
    assert occ.present["d1"].hold_s() > 200
    assert occ.estimate(T0 + 600 + 200).evidence["devices"] == 1


def test_a_device_whose_exits_never_came_is_forgotten() -> None:
    occ, _ = live()
    occ.presence(report("enter", "agent-1", T0, "d1"))
    assert occ.estimate(T0 + STALE_S - 1).evidence["devices"] == 0 and "d1" in occ.present
    occ.estimate(T0 + STALE_S + 1)
    assert not occ.present  # memory follows the devices reported, not the day's traffic


@pytest.mark.parametrize("kind", ["fixture", "neighbour"])
def test_fixtures_and_neighbours_are_evidence_not_people(kind: str) -> None:
    occ, _ = live()
    occ.presence(report("enter", "agent-1", T0, "person-1"))
    occ.presence(report("enter", "agent-3", T0, "other", device_kind=kind))
    est = occ.estimate(T0 + 1)
    assert est.evidence["devices"] == 1 and est.evidence[f"{kind}s"] == 1
    assert est.people == pytest.approx(1.0)


def test_zones_come_from_where_ingest_placed_the_device() -> None:
    occ, _ = live()
    for i in range(3):
        occ.presence(report("enter", "agent-1", T0, f"d{i}"))
    occ.placed("d0", "Women's")
    occ.placed("d1", "Women's")
    occ.placed("d2", None)
    occ.placed("never-reported", "Sport")  # ignored, not invented
    doc = occ.document(occ.estimate(T0 + 1))
    assert list(doc["zones"]) == [z.name for z in STORE.plan.zones]
    assert doc["zones"]["Women's"]["people"] == 2 and doc["zones"]["Sport"]["people"] == 0
    assert doc["people"] == 3 and doc["estimate"] == pytest.approx(3.0) and doc["sigma"] > 0
    assert doc["evidence"]["devices"] == 3


def test_door_and_motion_reach_the_estimate() -> None:
    occ, _ = live()
    occ.door(Door("agent-1:1", "agent-1", T0, "door-main", "in"))
    occ.door(Door("agent-1:2", "agent-1", T0 + 1, "door-main", "in"))
    occ.door(Door("agent-1:3", "agent-1", T0 + 2, "door-main", "out"))
    occ.motion(Motion("agent-1:4", "agent-1", T0 + 3, "pir-womens", "Women's", True))
    est = occ.estimate(T0 + 4)
    assert (est.evidence["door_in"], est.evidence["door_out"], est.evidence["pir_active"]) == (2, 1, 1)
    assert est.zones["Women's"].people >= 1.0  # motion: someone is there


def test_publishes_retained_on_change_and_once_a_minute() -> None:
    occ, out = live()
    occ.tick(T0)
    first = out.on("floorwalker/demo/occupancy")
    assert len(first) == 1 and first[0]["people"] == 0
    assert {t for t, _, _, _ in out.items} == {"floorwalker/demo/occupancy", *(
        f"floorwalker/demo/occupancy/{slug}" for slug in ("womens", "boys", "girls", "mens", "sport"))}
    assert all(qos == 1 and retain for _, _, qos, retain in out.items)
    occ.tick(T0 + 1)
    assert len(out.items) == 6  # nothing changed: nothing sent
    occ.presence(report("enter", "agent-1", T0 + 2, "d1"))
    occ.placed("d1", "Sport")
    occ.tick(T0 + 2)
    sent = out.items[6:]
    assert {t for t, _, _, _ in sent} == {"floorwalker/demo/occupancy", "floorwalker/demo/occupancy/sport"}
    store = out.on("floorwalker/demo/occupancy")[-1]
    assert store["people"] == 1 and store["zones"]["Sport"]["people"] == 1 and store["ts"] == T0 + 2
    assert set(store) == {"ts", "people", "estimate", "sigma", "zones"}
    assert set(out.on("floorwalker/demo/occupancy/sport")[-1]) == {"ts", "people", "estimate", "sigma"}
    occ.tick(T0 + PUBLISH_EVERY_S - 1)
    assert len(out.items) == 8
    occ.tick(T0 + PUBLISH_EVERY_S)  # a minute without change: sent again, so a subscriber sees it is alive
    assert len(out.items) == 12  # the four zones unchanged since T0
    occ.tick(T0 + 2 + PUBLISH_EVERY_S)
    assert {t for t, _, _, _ in out.items[12:]} == {"floorwalker/demo/occupancy", "floorwalker/demo/occupancy/sport"}


def test_zone_names_that_share_a_slug_get_topics_of_their_own() -> None:
    from dataclasses import replace

    from agent.geometry import Zone

    zones = (Zone("Men's", "clothing", ((0, 0), (10, 0), (10, 10))),
             Zone("Mens", "clothing", ((20, 0), (30, 0), (30, 10))),
             Zone("???", "other", ((40, 0), (50, 0), (50, 10))))
    store = replace(STORE, plan=replace(STORE.plan, zones=zones))
    occ = LiveOccupancy(store, Published())
    assert occ.zone_topics == {"Men's": "floorwalker/demo/occupancy/mens", "Mens": "floorwalker/demo/occupancy/mens-2",
                               "???": "floorwalker/demo/occupancy/zone-3"}


# ----------------------------------------------------------------------------- through the real broker and app


def _msg(p: Presence | Door) -> tuple[str, bytes]:
    kind = p.kind if isinstance(p, Presence) else "door"
    return agent_topic("demo", p.agent, kind), encode_agent(p)


@pytest.mark.broker
async def test_api_and_retained_topic_from_agent_traffic(aiohttp_client, settings: Settings, mqtt_broker: Broker,
                                                         tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(settings))
    app = client.app
    await wait_until(lambda: app[LINK].subscribed)
    t = time.time() - 5
    traffic = [_msg(report("enter", "agent-1", t, "d-shopper-1", seq=1)),
               _msg(report("enter", "agent-2", t + 0.5, "d-shopper-2", seq=2)),
               _msg(report("move", "agent-1", t + 1, "d-shopper-1", seq=3)),
               _msg(report("enter", "agent-1", t + 1.5, "d-printer", device_kind="fixture", seq=4)),
               _msg(report("enter", "agent-3", t + 2, "d-next-door", device_kind="neighbour", seq=5)),
               _msg(Door("agent-1:6", "agent-1", t - 2, "door-main", "in")),
               _msg(Door("agent-1:7", "agent-1", t - 1, "door-main", "in"))]
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, traffic)
    await wait_until(lambda: app[INGEST].counters.acked >= len(traffic))
    body = await (await client.get("/api/occupancy")).json()
    assert body["people"] == 2, body
    ev = body["evidence"]
    assert (ev["devices"], ev["fixtures"], ev["neighbours"], ev["door_in"]) == (2, 1, 1, 2)
    assert set(body["zones"]) == {z.name for z in STORE.plan.zones}
    # fixtures and neighbours open no visit: the map and the day's visitors count people only
    assert set(app[INGEST].visits.open) == {"d-shopper-1", "d-shopper-2"}
    await wait_until(lambda: app[INGEST].occupancy.published >= 6)
    with Collector(mqtt_broker.host, mqtt_broker.port, "floorwalker/demo/occupancy") as sub:
        got = await asyncio.to_thread(sub.wait_for, 1)
    assert got[0].retain and json.loads(got[0].payload)["people"] == 2


@pytest.mark.broker
async def test_a_strip_pir_goes_to_the_zone_decisions_not_to_zone_occupancy(aiohttp_client, settings: Settings,
                                                                            mqtt_broker: Broker) -> None:
    # pir-boys-s (agent-2's device file) watches a 1 m strip of Boy's: its quiet does not say Boy's is empty,
    # so occupancy counts zone PIRs only; the fusion's PIR board gets both.
    client = await aiohttp_client(create_app(settings))
    app = client.app
    await wait_until(lambda: app[LINK].subscribed)
    t = time.time() - 5
    traffic = [(agent_topic("demo", m.agent, "motion"), encode_agent(m)) for m in (
        Motion("agent-2:1", "agent-2", t, "pir-boys-s", "Boy's", True),
        Motion("agent-3:2", "agent-3", t + 0.5, "pir-mens", "Men's", True))]
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, traffic)
    await wait_until(lambda: app[INGEST].counters.acked >= len(traffic))
    assert app[INGEST].counters.accepted == 2, app[INGEST].counters
    board = app[INGEST].fusion.pirs
    assert board.area_state["agent-2/pir-boys-s"].active == {"agent-2/pir-boys-s"}
    assert {i: pir.active for i, pir in board.zones.items()} == {3: {"agent-3/pir-mens"}}
    body = await (await client.get("/api/occupancy")).json()
    assert body["evidence"]["pir_active"] == 1, body


@pytest.mark.parametrize("told", [True, False])
def test_an_area_pirs_quiet_does_not_empty_its_zone(told: bool) -> None:
    # agent-2's pir-boys watches all of Boy's, pir-boys-s a 1 m strip of it: a shopper browsing deep in Boy's
    # keeps pir-boys active while the strip goes quiet. Told the area PIRs (every caller: ingest, the factor
    # calibration), the live occupancy keeps the strip out of the zone's state; a store without area PIRs
    # (told none) takes every PIR as its zone's, the last report deciding.
    strips = area_pirs(load_deployment(CONFIG_DIR)) if told else {}
    occ = LiveOccupancy(STORE, Published(), factor=1.0, area_pirs=strips)
    occ.motion(Motion("agent-2:1", "agent-2", T0, "pir-boys", "Boy's", True))
    occ.motion(Motion("agent-2:2", "agent-2", T0 + 1, "pir-boys-s", "Boy's", True))
    occ.motion(Motion("agent-2:3", "agent-2", T0 + 3, "pir-boys-s", "Boy's", False))
    est = occ.estimate(T0 + 3 + DEFAULT_TUNING["pir_empty_s"])
    assert est.zones["Boy's"].people == (1.0 if told else 0.0)
    assert est.evidence["pir_active"] == int(told)


@pytest.mark.parametrize(("kinds", "counted"), [
    (("neighbour", "person"), "person"),  # weak at agent-1's sniffer, clearly inside for agent-2
    (("neighbour", "neighbour"), "neighbour"),
    (("person", "fixture"), "fixture"),
])
def test_what_a_device_is_is_judged_across_agents(kinds: tuple[str, str], counted: str) -> None:
    occ, _ = live()
    for agent, kind in zip(("agent-1", "agent-2"), kinds, strict=True):
        occ.presence(report("enter", agent, T0, "d1", device_kind=kind))
    ev = occ.estimate(T0 + 1).evidence
    assert (ev["devices"], ev["fixtures"], ev["neighbours"]) == (
        int(counted == "person"), int(counted == "fixture"), int(counted == "neighbour"))


# -- a rotating phone heard by two real agents: the agents' pipelines, the wire format, live occupancy

IES = bytes.fromhex("0000" "010402040b16" "32080c1218243048606c" "2d1aef011bffff000000000000000000000000000000000000"
                    "dd070050f2080010ff")  # a phone's probe IEs: its fingerprint (tests/agent/test_linking.py)


class _Wire:
    """An agent's sink: every message through encode and decode, as the aggregator receives it."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id, self.seq, self.messages = agent_id, 0, []

    def new_id(self) -> tuple[str, int]:
        self.seq += 1
        return f"{self.agent_id}:{self.seq}", self.seq

    def publish(self, message: object, seq: int) -> None:
        topic = agent_topic("demo", self.agent_id, message.kind)  # type: ignore[attr-defined]
        decoded = decode_agent(topic, encode_agent(message))  # type: ignore[arg-type]
        assert not isinstance(decoded, Rejection), decoded
        self.messages.append(decoded)


def _two_agents_hear(bursts: list[tuple[float, str, int, bool]]) -> LiveOccupancy:
    """``(ts, MAC, first seq, heard by agent-2 too)`` bursts of three probes through agent-1 and agent-2."""
    occ, _ = live()
    agents = [(Pipeline(d, wire := _Wire(d.agent_id)), wire) for d in load_deployment(CONFIG_DIR)[:2]]
    for ts, mac, seq, both in bursts:
        for i, (pipeline, wire) in enumerate(agents):
            if i and not both:
                continue
            for k in range(3):
                line = format_json(Probe(mac, -58 - 4 * i, 6, (seq + k) % 4096), ie=IES).rstrip(b"\n")
                pipeline.line("s1", line, ts + 0.05 * k)
            pipeline.tick(ts + 0.2)
            for m in wire.messages:
                occ.presence(m)
            wire.messages = []
    return occ


def test_a_phone_changing_mac_every_burst_heard_by_two_agents_counts_once() -> None:
    # agent-2 misses the first two bursts, so it names the phone after the third MAC, agent-1 after the first
    bursts = [(T0 + 20.0 * b, f"da:a1:19:00:00:{b:02x}", 100 + 40 * b, b >= 2) for b in range(10)]
    occ = _two_agents_hear(bursts)
    assert len({d for entry in occ.present.values() for _, d in entry.kinds}) == 2  # two agents' names ...
    est = occ.estimate(T0 + 185.0)
    assert est.evidence["devices"] == 1 and est.evidence["continuing_random"] == 1  # ... one phone
    assert est.people == pytest.approx(1.0)


def test_a_one_shot_random_mac_heard_by_two_agents_counts_little() -> None:
    occ = _two_agents_hear([(T0, "d6:00:00:00:00:09", 3000, True)])
    est = occ.estimate(T0 + 1.0)
    assert est.evidence["devices"] == 1 and est.evidence["continuing_random"] == 0
    assert est.evidence["weighted_devices"] == pytest.approx(DEFAULT_TUNING["random_weight"], abs=0.01)
    assert est.people < 0.1
