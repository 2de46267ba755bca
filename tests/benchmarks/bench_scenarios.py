"""Scenarios at the retail demo's pace: through the mock sensors, the same offer as published directly?

    python tests/benchmarks/run.py scenarios [--quick]

Seed 000's example scenario (2 s between points) and 20 scenarios drawn as a person would in the
"Create customer scenario" tab (focus pins in a clothing zone, Sport, another clothing zone, with
movement pins between; step 2 s), each built by :mod:`aggregator.scenario_builder` exactly as
``POST /api/new_scenario`` builds it, and played two ways:

* **directly**: the path's points as customer events (seed 000's scenario-player publishes one
  ``customer/move`` per point), each point's zone from the plan;
* **through the mock sensors**: the mock world plays the walk (``World.add_scenario``: a probe
  burst every 2 s), every sniffer of the demo layout hears each frame as the mock simulator makes it
  (the sniffer's calibration run forwards plus its ``sigma_db`` of shadowing, 3 frames a burst,
  nothing under -95 dBm), each agent's real :class:`~agent.presence.PresenceTracker` turns them into
  presence reports, and the aggregator's :class:`~aggregator.fusion.Fusion` fuses them with the PIR
  reports of the store (the scenario shopper and the mock world's other shoppers), zone by the HMM.

Both then go through the same :class:`~aggregator.dwell.DwellTracker` (``DWELL_S``) and the offer
engine with the demo rules. ``scenarios.offer_match``: scenarios whose offer (name and coupon
department, or none) is the same both ways. No broker or processes here, so it runs in seconds;
tests/browser/test_scenario_offer.py plays one such scenario end to end.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.config import DeviceConfig, load_deployment
from agent.contract import Presence, Scenario
from agent.geometry import Plan, Zone
from agent.mock.devices import FRAMES_PER_BURST
from agent.mock.world import Shopper, World
from agent.positioning.calibration import LogDistanceModel
from agent.presence import PHONE_HEIGHT_M, PresenceTracker, Sighting
from aggregator.dwell import DwellTracker
from aggregator.events import ShopperEvent
from aggregator.fusion import Fusion
from aggregator.offers.engine import OfferEngine
from aggregator.offers.inputs import click_from_browsing
from aggregator.offers.rules import StoreMapping, load_rules
from aggregator.scenario_builder import Pin, build, parse_request
from tests.benchmarks.figures import Figure

REPO = Path(__file__).resolve().parents[2]
SHARED = Path("/work/shared/reference") if Path("/work/shared/reference").is_dir() else REPO.parent / "shared/reference"
EXAMPLE = SHARED / "retail-demo/example_ui_scenario.json"
STEP_S = 2.0
# A focus pin lingers 5 points (10 s at 2 s steps), a movement pin one step: browsing must start
# within a focus and not on a single point, as seed 000 describes the pins. 30 s (the default
# FLOORWALKER_DWELL_S) would make every 2 s-step scenario offer nothing both ways.
DWELL_S = 6.0
SENSITIVITY_DBM = -95.0  # as agent/mock/simulator.py
SWEEP_S = 0.5  # the aggregator's dwell sweep runs this often (ingest's periodic check)
PIR_HOLD_OFF_S = 5.0
CLOTHING = ("Women's", "Boy's", "Girl's", "Men's")


@dataclass
class Outcome:
    """What one way of playing a scenario produced: browsing zones in order and offers."""

    browsing: list[str] = field(default_factory=list)
    offers: list[tuple[str, str | None]] = field(default_factory=list)  # (offer, department of the click)


def _customers() -> dict[str, dict]:
    rows = json.loads((REPO / "firmware-config/customers.json").read_text())
    return {str(r["customer_id"]): r for r in rows}


def _in_segment(c: dict) -> bool:
    age = int(c["age"])
    return (c["gender"] == "F" and 25 <= age <= 35) or (c["gender"] == "M" and 36 <= age <= 45)


def _inside(rng: random.Random, plan: Plan, name: str, margin_px: float = 40.0) -> tuple[float, float]:
    zone = plan.zone_named(name)
    assert zone is not None
    x0, y0, x1, y1 = zone.bbox
    return (rng.uniform(x0 + margin_px, x1 - margin_px), rng.uniform(y0 + margin_px, y1 - margin_px))


def scenarios(plan: Plan, devices: list[DeviceConfig], count: int) -> list[tuple[str, Scenario]]:
    """Seed 000's example, then ``count`` tab-made scenarios (seeded), as /api/new_scenario builds them."""
    store = devices[0].store
    out = []
    body = json.loads(EXAMPLE.read_text())
    cid, pins, step_s, has_enter, has_exit = parse_request(body, plan)
    out.append(("example", build(cid, pins, step_s, plan, store.entrance, store.exit,
                                 has_enter=has_enter, has_exit=has_exit)))
    customers = _customers()
    segment = sorted((k for k, c in customers.items() if _in_segment(c)), key=int)
    others = sorted((k for k, c in customers.items() if not _in_segment(c)), key=int)
    rng = random.Random(2026)
    for n in range(count):
        first, second = rng.sample(CLOTHING, 2)
        stops = [first, "Sport", second]
        if n % 5 == 4:  # now and then a walk that should not qualify: no Sport stop
            stops = [first, second]
        pins = []
        for stop in stops:
            if rng.random() < 0.5:  # a movement pin on the way, as people click
                pins.append(Pin("MOVE", *_inside(rng, plan, rng.choice((*CLOTHING, "Sport")))))
            pins.append(Pin("FOCUS", *_inside(rng, plan, stop)))
        customer = rng.choice(others if n % 7 == 6 else segment)
        out.append((f"generated-{n:02d}", build(customer, pins, STEP_S, plan, store.entrance, store.exit)))
    return out


class _Referee:
    """Dwell and offers, shared by both ways of playing (what ingest and the offer service do)."""

    def __init__(self, customers: dict[str, dict], mapping: StoreMapping) -> None:
        self.customers = customers
        self.mapping = mapping
        self.dwell = DwellTracker(DWELL_S)
        self.engine = OfferEngine(load_rules(REPO / "firmware-config/offers.toml"))
        self.outcome = Outcome()

    def zone(self, customer: str, zone: Zone | None, ts: float) -> None:
        started = self.dwell.update(customer, zone, ts)
        if started is not None:
            self._browsing(customer, started, ts)

    def sweep(self, now: float) -> None:
        for customer, zone in self.dwell.due(now):
            self._browsing(customer, zone, now)

    def _browsing(self, customer: str, zone: Zone, ts: float) -> None:
        self.outcome.browsing.append(zone.name)
        event = ShopperEvent("browsing", ts, visitor=customer, customer_id=customer, zone=zone.name,
                             dep=zone.department, category=zone.category)
        click = click_from_browsing(event, self.customers, self.mapping)
        if click is None:
            return
        for t in self.engine.process(click):
            if t.offer is not None:
                self.outcome.offers.append((t.offer, t.click.department))


def play_direct(plan: Plan, walker: Shopper, customer: str, referee: _Referee) -> Outcome:
    """One customer event per path point, at the time the mock world plays that point."""
    end = walker.end_ts
    points = iter(walker.track)
    point = next(points, None)
    t = walker.start_ts
    while t <= end + DWELL_S:
        while point is not None and point[0] <= t:
            referee.zone(customer, plan.zone_at((point[1], point[2])), point[0])
            point = next(points, None)
        referee.sweep(t)
        t += SWEEP_S
    return referee.outcome


def play_sensors(devices: list[DeviceConfig], world: World, walker: Shopper, customer: str,
                 referee: _Referee, rng: random.Random) -> Outcome:
    """Probe bursts -> each agent's PresenceTracker -> Fusion (with PIRs) -> zone, as live."""
    plan = devices[0].store.plan
    store = devices[0].store
    fusion = Fusion(store, devices)
    trackers = {d.agent_id: PresenceTracker(d) for d in devices}
    models = [(d.agent_id, s, LogDistanceModel.fit(s.calibration)) for d in devices for s in d.sniffers]
    bursts = iter(walker.bursts)
    burst = next(bursts, None)
    pir_active: dict[str, float] = {}  # zone -> last time someone was in it, while reported active
    device = f"scenario-{customer}"
    t = walker.start_ts - 60.0  # a minute of the store's PIR life before the walk
    n = 0
    while t <= walker.end_ts + DWELL_S:
        _pirs(plan, world, fusion, pir_active, t)
        while burst is not None and burst <= t:
            pos = walker.position_at(burst)
            if pos is not None:
                _hear(burst, pos, plan, models, trackers, fusion, device, rng, n)
                n += 1
                fix = fusion.locate(device, burst)
                if fix is not None:
                    referee.zone(customer, fix.zone, fix.ts)
            burst = next(bursts, None)
        referee.sweep(t)
        t += SWEEP_S
    return referee.outcome


def _hear(ts: float, pos: tuple[float, float], plan: Plan, models: list, trackers: dict[str, PresenceTracker],
          fusion: Fusion, device: str, rng: random.Random, n: int) -> None:
    for agent, sniffer, model in models:
        floor_m = math.hypot(pos[0] - sniffer.position_px[0], pos[1] - sniffer.position_px[1]) * plan.metres_per_px
        slant_m = math.hypot(floor_m, sniffer.height_m - PHONE_HEIGHT_M)
        for frame in range(FRAMES_PER_BURST):
            rssi = model.rssi_at(slant_m) + rng.gauss(0.0, model.sigma_db)
            if rssi < SENSITIVITY_DBM:
                continue
            update = trackers[agent].sighting(Sighting(ts + 0.03 * frame, sniffer.id, device,
                                                       max(-120, min(0, round(rssi)))))
            if update is not None:
                fusion.add(Presence(update.kind, f"{agent}:{n}:{frame}", agent, update.ts, device, update.x,
                                    update.y, update.accuracy_m, update.rssi_dbm, update.distance_m, False,
                                    update.ranges))


def _pirs(plan: Plan, world: World, fusion: Fusion, active: dict[str, float], now: float) -> None:
    """Each zone's PIR as the mock drives it (high while anyone is inside), reported with the hold-off."""
    occupied = {z.name for s in world.active(now) if (p := s.position_at(now)) is not None
                for z in plan.zones if z.contains(p)}
    for name in occupied:
        if name not in active:
            fusion.motion(name, "pir", True, now)
        active[name] = now
    for name, last in list(active.items()):
        if name not in occupied and now - last >= PIR_HOLD_OFF_S:
            del active[name]
            fusion.motion(name, "pir", False, now)


def run(args: argparse.Namespace) -> Iterator[Figure]:
    devices = load_deployment(REPO / "firmware-config")
    plan = devices[0].store.plan
    store = devices[0].store
    count = 5 if args.quick else 20
    customers = _customers()
    mapping = load_rules(REPO / "firmware-config/offers.toml").store
    matched = browsing_matched = fired = 0
    mismatches = []
    played = scenarios(plan, devices, count)
    for i, (name, scenario) in enumerate(played):
        world = World(store, seed=i, shoppers=20)
        t0 = 1_800_000_000.0 + 3600.0 * i
        walker = world.add_scenario(scenario, t0)
        direct = play_direct(plan, walker, scenario.customer_id, _Referee(customers, mapping))
        sensed = play_sensors(devices, world, walker, scenario.customer_id, _Referee(customers, mapping),
                              random.Random(i))
        fired += bool(direct.offers)
        if direct.offers == sensed.offers:
            matched += 1
        else:
            mismatches.append(f"{name}: direct {direct.offers} {direct.browsing}, sensors {sensed.offers} "
                              f"{sensed.browsing}")
        browsing_matched += direct.browsing == sensed.browsing
    for line in mismatches:
        print(f"# scenarios: {line}")
    total = len(played)
    yield Figure("scenarios.offer_match", matched, f"of {total}", f">= {total}",
                 note=f"seed 000's example + {total - 1} tab-made scenarios at {STEP_S:g} s steps, dwell "
                      f"{DWELL_S:g} s; {fired} fire an offer when published directly")
    yield Figure("scenarios.browsing_match", browsing_matched, f"of {total}",
                 note="the same browsing zones in the same order both ways")
