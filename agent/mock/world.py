"""The simulated store: who enters when, where they walk, when their phones probe, and what else is heard.

Deterministic from ``(seed, wall-clock time)``: time is cut into slots of ``mean_visit_s / shoppers``
seconds and slot ``k`` brings shopper ``k``, whose every detail comes from a random generator seeded
with ``(seed, k)``. Four mock agents started at different moments with the same seed therefore
simulate the same people at the same times, so one shopper is heard by several agents, as in a
real store; and shoppers who "arrived" before the process started are already inside, so the map
is alive within seconds. Benchmarks reuse the world for ground truth.

Made honest (issue 17): a share of phones randomise their MAC the way real ones do (see
:mod:`agent.mock.devices`); staff phones are in the store all day; fixtures (a printer, a till PC)
probe from fixed places; and people in the shop next door are heard weakly through the wall. The
truth (:meth:`World.occupancy`) counts the people in the store, by zone, so an estimate can be
scored. Staff, fixtures and neighbours are cut into segments of :data:`SEGMENT_S`, each a pure
function of ``(seed, who, segment)`` like the shoppers' slots.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from agent.config import StoreConfig
from agent.contract import Scenario
from agent.geometry import Point, Zone
from agent.mock.devices import FIXTURE_MODEL, MODELS, OUIS, Radio, make_radio, random_mac, vendor_mac

MEAN_VISIT_S = 240.0  # UK/EU fashion retail dwell is typically 5-15 min; shorter keeps the demo lively
MAX_VISIT_S = 600.0
WALK_SPEED_MPS = (0.7, 1.3)  # strolling shoppers (pedestrian studies: ~1.2-1.4 m/s walking, slower browsing)
DWELL_S = (20.0, 90.0)
# Probe interval of a phone in use: from a few seconds (screen on, Wi-Fi settings open) to minutes
# (screen off); Freudiger, "How talkative is your mobile device?" (WiSec 2015) measured that spread.
# We simulate phones in use, the busy end, so a demo map moves.
PROBE_INTERVAL_S = (8.0, 30.0)
# Staff phones sit in a pocket, associated to the store's Wi-Fi: they probe less (Freudiger 2015's
# screen-off end) and use one stable address for that network (iOS 14 / Android 10 private addresses).
STAFF_PROBE_INTERVAL_S = (30.0, 90.0)
FIXTURE_PROBE_INTERVAL_S = (45.0, 75.0)  # a printer or PC rescanning for its network about once a minute
SCENARIO_PROBE_INTERVAL_S = 2.0  # a scripted walk should be followed closely on the map
SEGMENT_S = 600.0  # staff, fixtures and neighbours are generated this much at a time
# A staff member works 8 h, then is away 1 h (a break, home), staggered per member: a phone that never
# leaves would be a fixture to the agents (agent.device_kinds: heard 12 h without a 1 h gap), and staff
# are people.
SHIFT_SEGMENTS = 48
BREAK_SEGMENTS = 6
# Attenuation of one interior wall at 2.4 GHz: ~10-15 dB for brick or concrete block (Wilson,
# "Propagation losses through common building materials 2.4 GHz vs 5 GHz", Magis Networks 2002).
WALL_LOSS_DB = 12.0
NEIGHBOUR_VISIT_S = (300.0, 900.0)
NEIGHBOUR_GAP_PX = (40.0, 480.0)  # 0.8-9.6 m behind the right-hand wall at the demo scale
DEFAULT_RANDOMIZED_SHARE = 0.4  # issue 17: score with 40 % of phones randomising
KINDS = ("shopper", "staff", "fixture", "neighbour")


@dataclass(frozen=True, slots=True)
class Shopper:
    """Anyone or anything that probes: a shopper's visit, a staff member's or fixture's segment of the
    day, a visit next door. A phone (``radio``), maybe a loyalty customer, a timed track."""

    key: str  # "k123" for slot shoppers, "scenario-<customer>-<n>", "staff1@42", "fixture0@42", "n7"
    mac: str  # the first MAC it probes with (the only one, unless ``randomized``)
    randomized: bool
    customer_id: str | None
    track: tuple[tuple[float, float, float], ...]  # (ts, x_px, y_px), times increasing
    bursts: tuple[float, ...]
    radio: Radio
    kind: str = "shopper"  # one of KINDS
    wall_loss_db: float = 0.0  # between it and every sniffer of the store (the shop next door)

    @property
    def start_ts(self) -> float:
        return self.track[0][0]

    @property
    def end_ts(self) -> float:
        return self.track[-1][0]

    def position_at(self, ts: float) -> Point | None:
        """True position at ``ts`` (linear between waypoints), None outside the visit."""
        track = self.track
        if ts < track[0][0] or ts > track[-1][0]:
            return None
        i = bisect.bisect_right(track, (ts, math.inf, math.inf))
        if i >= len(track):
            return track[-1][1], track[-1][2]
        (t0, x0, y0), (t1, x1, y1) = track[i - 1], track[i]
        f = 0.0 if t1 <= t0 else (ts - t0) / (t1 - t0)
        return x0 + f * (x1 - x0), y0 + f * (y1 - y0)


@dataclass(frozen=True, slots=True)
class Truth:
    """Who is in the store at one moment: the people (shoppers and staff), and per zone."""

    ts: float
    shoppers: int
    staff: int
    zones: dict[str, int]  # every zone of the plan, zero included; people between zones are in none

    @property
    def people(self) -> int:
        return self.shoppers + self.staff


def _point_in(zone: Zone, rng: random.Random) -> Point:
    x0, y0, x1, y1 = zone.bbox
    for _ in range(30):
        p = (rng.uniform(x0, x1), rng.uniform(y0, y1))
        if zone.contains(p):
            return p
    return zone.centroid


def _bursts(rng: random.Random, start: float, end: float, interval: tuple[float, float]) -> tuple[float, ...]:
    period = rng.uniform(*interval)
    t = start + rng.uniform(0.0, period)
    out = []
    while t < end:
        out.append(t)
        t += period * rng.uniform(0.8, 1.2)
    return tuple(out)


def _phone(rng: random.Random, bursts: tuple[float, ...], randomized: bool) -> tuple[str, Radio]:
    """A phone of a random model: its first MAC and its radio."""
    model = rng.choice(MODELS)
    own = vendor_mac(rng)
    radio = make_radio(rng, model, bursts, mac=own, randomized=randomized)
    return (radio.macs[0] if radio.macs else (random_mac(rng) if randomized else own)), radio


class World:
    """Everything the store's sniffers hear, as a pure function of the seed and the time."""

    def __init__(self, store: StoreConfig, *, seed: int = 1, shoppers: int = 20,
                 randomized_share: float = DEFAULT_RANDOMIZED_SHARE, loyalty_share: float = 0.4,
                 customers: Sequence[str] = (), staff: int = 2, fixtures: int = 2, neighbours: float = 4.0,
                 opens_ts: float | None = None) -> None:
        if shoppers < 1:
            raise ValueError(f"shoppers must be at least 1, got {shoppers}")
        if not 0.0 <= randomized_share <= 1.0:
            raise ValueError(f"randomized_share must be between 0 and 1, got {randomized_share}")
        if staff < 0 or fixtures < 0 or neighbours < 0:
            raise ValueError("staff, fixtures and neighbours cannot be negative")
        self.store = store
        self.seed = seed
        self.slot_s = MEAN_VISIT_S / shoppers
        self.randomized_share = randomized_share
        self.loyalty_share = loyalty_share
        self.customers = tuple(customers)
        self.staff = staff
        self.fixtures = fixtures
        # None: the store has always been open (busy from the first second); else no shopper arrives before
        # it, so the store starts empty, as a real one opens, and a door count started then is right
        self.opens_ts = opens_ts
        # people next door at a time, on average: one arrives every neighbour_slot_s
        self.neighbour_slot_s = (sum(NEIGHBOUR_VISIT_S) / 2 / neighbours) if neighbours > 0 else math.inf
        self.px_per_m = 1.0 / store.plan.metres_per_px
        self.scripted: list[Shopper] = []
        self.shopper = lru_cache(maxsize=4096)(self._make_shopper)
        self.segment = lru_cache(maxsize=1024)(self._make_segment)
        self.neighbour = lru_cache(maxsize=1024)(self._make_neighbour)

    def _rng(self, *what: object) -> random.Random:
        return random.Random(":".join(["floorwalker-mock", str(self.seed), *map(str, what)]))

    def _walk(self, rng: random.Random, start: float,
              points: list[tuple[Point, float]]) -> list[tuple[float, float, float]]:
        """Waypoints with times: walk at a steady pace between points, dwell at each."""
        speed_px = rng.uniform(*WALK_SPEED_MPS) * self.px_per_m
        t = start
        (x, y), _ = points[0]
        track = [(t, x, y)]
        for (px, py), dwell in points[1:]:
            t += math.hypot(px - x, py - y) / speed_px
            track.append((t, px, py))
            if dwell > 0:
                t += dwell
                track.append((t, px, py))
            x, y = px, py
        return track

    def _make_shopper(self, k: int) -> Shopper:
        rng = self._rng(k)
        start = k * self.slot_s + rng.uniform(0.0, self.slot_s)
        loyal = bool(self.customers) and rng.random() < self.loyalty_share
        # loyalty apps run on phones whose address the app can read, so loyal phones do not randomise
        randomized = not loyal and rng.random() < self.randomized_share
        customer = rng.choice(self.customers) if loyal else None
        zones = self.store.plan.zones
        stops = [(_point_in(rng.choice(zones), rng), rng.uniform(*DWELL_S)) for _ in range(rng.randint(1, 3))]
        track = self._walk(rng, start, [(self.store.entrance, 0.0), *stops, (self.store.exit, 0.0)])
        if track[-1][0] - start > MAX_VISIT_S:  # keep visits inside the window active() looks back over
            scale = (MAX_VISIT_S - 1.0) / (track[-1][0] - start)
            track = [(start + (t - start) * scale, x, y) for t, x, y in track]
        bursts = _bursts(rng, start, track[-1][0], PROBE_INTERVAL_S)
        mac, radio = _phone(rng, bursts, randomized)
        return Shopper(f"k{k}", mac, randomized, customer, tuple(track), bursts, radio)

    # ------------------------------------------------------------------ staff, fixtures, next door

    def _staff_point(self, member: int, segment: int) -> Point:
        rng = self._rng("staff-at", member, segment)
        return _point_in(rng.choice(self.store.plan.zones), rng)

    def _make_segment(self, who: str, index: int, segment: int) -> Shopper:
        """Staff member or fixture ``index`` over ``[segment, segment + 1) * SEGMENT_S``."""
        rng = self._rng(who, index, segment)
        device_rng = self._rng(who, index)  # what stays the same all day: the address and the model
        start, end = segment * SEGMENT_S, (segment + 1) * SEGMENT_S
        if who == "staff":
            here, there = self._staff_point(index, segment), self._staff_point(index, segment + 1)
            move_s = math.hypot(there[0] - here[0], there[1] - here[1]) / (1.0 * self.px_per_m)
            leave = max(start, end - move_s)
            track = ((start, *here), (leave, *here), (end, *there))
            bursts = _bursts(rng, start, end, STAFF_PROBE_INTERVAL_S)
            model, mac = device_rng.choice(MODELS), random_mac(device_rng)  # a stable private address
        else:
            zone = self.store.plan.zones[index % len(self.store.plan.zones)]
            spot = _point_in(zone, device_rng)
            track = ((start, *spot), (end, *spot))
            bursts = _bursts(rng, start, end, FIXTURE_PROBE_INTERVAL_S)
            model, mac = FIXTURE_MODEL, vendor_mac(device_rng)
        radio = make_radio(rng, model, bursts, mac=mac, randomized=False)
        return Shopper(f"{who}{index}@{segment}", mac, False, None, track, bursts, radio, kind=who)

    def _make_neighbour(self, k: int) -> Shopper:
        """Visitor ``k`` of the shop behind the right-hand wall: heard through it, never inside."""
        rng = self._rng("next-door", k)
        start = k * self.neighbour_slot_s + rng.uniform(0.0, self.neighbour_slot_s)
        end = start + rng.uniform(*NEIGHBOUR_VISIT_S)
        plan = self.store.plan
        points = [(plan.width_px + rng.uniform(*NEIGHBOUR_GAP_PX), rng.uniform(0.3, 1.0) * plan.height_px)
                  for _ in range(2)]
        track = ((start, *points[0]), ((start + end) / 2, *points[1]), (end, *points[1]))
        bursts = _bursts(rng, start, end, PROBE_INTERVAL_S)
        randomized = rng.random() < self.randomized_share
        mac, radio = _phone(rng, bursts, randomized)
        return Shopper(f"n{k}", mac, randomized, None, track, bursts, radio, kind="neighbour",
                       wall_loss_db=WALL_LOSS_DB)

    def _background_between(self, t0: float, t1: float) -> list[Shopper]:
        out = [self.segment(who, i, n)
               for n in range(math.floor(t0 / SEGMENT_S), math.floor(t1 / SEGMENT_S) + 1)
               for who, count in (("staff", self.staff), ("fixture", self.fixtures)) for i in range(count)
               if who == "fixture" or self.on_shift(i, n)]
        if self.neighbour_slot_s < math.inf:
            first = math.floor((t0 - NEIGHBOUR_VISIT_S[1]) / self.neighbour_slot_s)
            out.extend(self.neighbour(k) for k in range(first, math.floor(t1 / self.neighbour_slot_s) + 1))
        return [s for s in out if s.end_ts > t0 and s.start_ts <= t1]

    # ------------------------------------------------------------------ scripted walks

    def add_scenario(self, scenario: Scenario, now: float) -> Shopper:
        """A scripted walk of a named customer, starting a second from now (seed 000's scenario tab)."""
        digest = hashlib.sha256(f"scenario:{self.seed}:{scenario.customer_id}".encode()).digest()
        mac = OUIS[digest[0] % len(OUIS)] + ":" + digest[1:4].hex(":")
        rng = random.Random(digest)
        track: list[tuple[float, float, float]] = []
        t = now + 1.0
        for step in scenario.path:
            track.append((t, step.x, step.y))
            if step.type == "FOCUS":  # the customer stops to look: stay a step longer
                t += scenario.step_s
                track.append((t, step.x, step.y))
            t += scenario.step_s
        bursts = _bursts(rng, track[0][0], track[-1][0], (SCENARIO_PROBE_INTERVAL_S,) * 2)
        radio = make_radio(rng, MODELS[digest[4] % len(MODELS)], bursts, mac=mac, randomized=False)
        shopper = Shopper(f"scenario-{scenario.customer_id}-{int(now)}", mac, False, scenario.customer_id,
                          tuple(track), bursts, radio)
        self.scripted = [s for s in self.scripted if s.end_ts >= now] + [shopper]
        return shopper

    # ------------------------------------------------------------------ queries

    def _slots(self, t0: float, t1: float) -> range:
        """Slots whose shopper may be in the store during ``[t0, t1]``."""
        first = math.floor((t0 - MAX_VISIT_S) / self.slot_s)
        if self.opens_ts is not None:
            first = max(first, math.ceil(self.opens_ts / self.slot_s))
        return range(first, math.floor(t1 / self.slot_s) + 1)

    def active(self, ts: float) -> list[Shopper]:
        """Shoppers inside the store at ``ts``."""
        out = [s for k in self._slots(ts, ts) if (s := self.shopper(k)).start_ts <= ts <= s.end_ts]
        out.extend(s for s in self.scripted if s.start_ts <= ts <= s.end_ts)
        return out

    def on_shift(self, member: int, segment: int) -> bool:
        """Staff member ``member`` works during ``segment`` (8 h on, 1 h off, staggered by member)."""
        period = SHIFT_SEGMENTS + BREAK_SEGMENTS
        return (segment + member * (period // max(self.staff, 1))) % period < SHIFT_SEGMENTS

    def staff_at(self, ts: float) -> list[Shopper]:
        """Staff members on the floor at ``ts``."""
        n = math.floor(ts / SEGMENT_S)
        return [self.segment("staff", i, n) for i in range(self.staff) if self.on_shift(i, n)]

    def occupancy(self, ts: float) -> Truth:
        """The truth an occupancy estimate is scored against: people in the store, per zone."""
        plan = self.store.plan
        zones = {z.name: 0 for z in plan.zones}
        shoppers, staff = self.active(ts), self.staff_at(ts)
        for person in (*shoppers, *staff):
            pos = person.position_at(ts)
            zone = plan.zone_at(pos) if pos is not None else None
            if zone is not None:
                zones[zone.name] += 1
        return Truth(ts, len(shoppers), len(staff), zones)

    def bursts_between(self, t0: float, t1: float) -> Iterator[tuple[Shopper, float]]:
        """Probe bursts of everything heard (shoppers, staff, fixtures, next door), ``t0 < ts <= t1``, in time
        order."""
        found = []
        for shopper in self.heard_between(t0, t1):
            i = bisect.bisect_right(shopper.bursts, t0)
            while i < len(shopper.bursts) and shopper.bursts[i] <= t1:
                found.append((shopper.bursts[i], shopper))
                i += 1
        for ts, shopper in sorted(found, key=lambda item: item[0]):
            yield shopper, ts

    def active_between(self, t0: float, t1: float) -> list[Shopper]:
        """Shoppers whose visit overlaps ``(t0, t1]``."""
        out = [s for k in self._slots(t0, t1) if (s := self.shopper(k)).end_ts > t0 and s.start_ts <= t1]
        out.extend(s for s in self.scripted if s.end_ts > t0 and s.start_ts <= t1)
        return out

    def heard_between(self, t0: float, t1: float) -> list[Shopper]:
        """Everything that may probe in ``(t0, t1]``: shoppers, staff, fixtures and the shop next door."""
        return self.active_between(t0, t1) + self._background_between(t0, t1)
