"""The simulated store's shoppers: who enters when, where they walk, when their phones probe.

Deterministic from ``(seed, wall-clock time)``: time is cut into slots of ``mean_visit_s / shoppers``
seconds and slot ``k`` brings shopper ``k``, whose every detail comes from a random generator seeded
with ``(seed, k)``. Four mock agents started at different moments with the same seed therefore
simulate the same people at the same times, so one shopper is heard by several agents, as in a
real store; and shoppers who "arrived" before the process started are already inside, so the map
is alive within seconds. Benchmarks reuse the world for ground truth.
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

MEAN_VISIT_S = 240.0  # UK/EU fashion retail dwell is typically 5-15 min; shorter keeps the demo lively
MAX_VISIT_S = 600.0
WALK_SPEED_MPS = (0.7, 1.3)  # strolling shoppers (pedestrian studies: ~1.2-1.4 m/s walking, slower browsing)
DWELL_S = (20.0, 90.0)
# Probe interval of a phone in use: from a few seconds (screen on, Wi-Fi settings open) to minutes
# (screen off); Freudiger, "How talkative is your mobile device?" (WiSec 2015) measured that spread.
# We simulate phones in use, the busy end, so a demo map moves.
PROBE_INTERVAL_S = (8.0, 30.0)
SCENARIO_PROBE_INTERVAL_S = 2.0  # a scripted walk should be followed closely on the map
FRAMES_PER_BURST = 3  # one probe per channel scanned (1, 6, 11), ~30 ms apart
# Phone vendor OUIs (IEEE registry: Apple, Samsung, Xiaomi, Huawei, Google): globally administered.
OUIS = ("a4:83:e7", "f0:18:98", "8c:f5:a3", "50:8f:4c", "64:09:80", "3c:28:6d", "dc:a6:32")


@dataclass(frozen=True, slots=True)
class Shopper:
    """One visit: a phone (MAC), maybe a loyalty customer, a timed track through the store."""

    key: str  # "k123" for slot shoppers, "scenario-<customer>-<n>" for scripted walks
    mac: str
    randomized: bool
    customer_id: str | None
    track: tuple[tuple[float, float, float], ...]  # (ts, x_px, y_px), times increasing
    bursts: tuple[float, ...]

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


def _mac(rng: random.Random, randomized: bool) -> str:
    if randomized:
        first = (rng.getrandbits(8) | 0x02) & 0xFE  # locally administered, unicast
        return ":".join(f"{b:02x}" for b in [first, *(rng.getrandbits(8) for _ in range(5))])
    return rng.choice(OUIS) + ":" + ":".join(f"{rng.getrandbits(8):02x}" for _ in range(3))


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


class World:
    """Every shopper of the simulated store, as a pure function of the seed and the time."""

    def __init__(self, store: StoreConfig, *, seed: int = 1, shoppers: int = 20, randomized_share: float = 0.3,
                 loyalty_share: float = 0.4, customers: Sequence[str] = ()) -> None:
        if shoppers < 1:
            raise ValueError(f"shoppers must be at least 1, got {shoppers}")
        self.store = store
        self.seed = seed
        self.slot_s = MEAN_VISIT_S / shoppers
        self.randomized_share = randomized_share
        self.loyalty_share = loyalty_share
        self.customers = tuple(customers)
        self.px_per_m = 1.0 / store.plan.metres_per_px
        self.scripted: list[Shopper] = []
        self.shopper = lru_cache(maxsize=4096)(self._make_shopper)

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
        rng = random.Random(f"floorwalker-mock:{self.seed}:{k}")
        start = k * self.slot_s + rng.uniform(0.0, self.slot_s)
        loyal = bool(self.customers) and rng.random() < self.loyalty_share
        randomized = not loyal and rng.random() < self.randomized_share
        mac = _mac(rng, randomized)
        customer = rng.choice(self.customers) if loyal else None
        zones = self.store.plan.zones
        stops = [(_point_in(rng.choice(zones), rng), rng.uniform(*DWELL_S)) for _ in range(rng.randint(1, 3))]
        track = self._walk(rng, start, [(self.store.entrance, 0.0), *stops, (self.store.exit, 0.0)])
        if track[-1][0] - start > MAX_VISIT_S:  # keep visits inside the window active() looks back over
            scale = (MAX_VISIT_S - 1.0) / (track[-1][0] - start)
            track = [(start + (t - start) * scale, x, y) for t, x, y in track]
        end = track[-1][0]
        return Shopper(f"k{k}", mac, randomized, customer, tuple(track), _bursts(rng, start, end, PROBE_INTERVAL_S))

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
        shopper = Shopper(f"scenario-{scenario.customer_id}-{int(now)}", mac, False, scenario.customer_id,
                          tuple(track), _bursts(rng, track[0][0], track[-1][0], (SCENARIO_PROBE_INTERVAL_S,) * 2))
        self.scripted = [s for s in self.scripted if s.end_ts >= now] + [shopper]
        return shopper

    def active(self, ts: float) -> list[Shopper]:
        """Shoppers inside the store at ``ts``."""
        first = math.floor((ts - MAX_VISIT_S) / self.slot_s)
        last = math.floor(ts / self.slot_s)
        out = [s for k in range(first, last + 1) if (s := self.shopper(k)).start_ts <= ts <= s.end_ts]
        out.extend(s for s in self.scripted if s.start_ts <= ts <= s.end_ts)
        return out

    def bursts_between(self, t0: float, t1: float) -> Iterator[tuple[Shopper, float]]:
        """Probe bursts with ``t0 < ts <= t1``, in time order."""
        found = []
        for shopper in self.active_between(t0, t1):
            i = bisect.bisect_right(shopper.bursts, t0)
            while i < len(shopper.bursts) and shopper.bursts[i] <= t1:
                found.append((shopper.bursts[i], shopper))
                i += 1
        for ts, shopper in sorted(found, key=lambda item: item[0]):
            yield shopper, ts

    def active_between(self, t0: float, t1: float) -> list[Shopper]:
        """Shoppers whose visit overlaps ``(t0, t1]``."""
        first = math.floor((t0 - MAX_VISIT_S) / self.slot_s)
        last = math.floor(t1 / self.slot_s)
        out = [s for k in range(first, last + 1) if (s := self.shopper(k)).end_ts > t0 and s.start_ts <= t1]
        out.extend(s for s in self.scripted if s.end_ts > t0 and s.start_ts <= t1)
        return out
