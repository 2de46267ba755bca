"""Which department a shopper is in, from every piece of evidence the store has: a hidden Markov model.

A point estimate and a dead band (:class:`~agent.positioning.zones.ZoneTracker`) use one piece of
evidence, the RSSI position. Three more are available and each fixes a different failure:

* **the position's uncertainty**: the motion filter's per-axis variance says how much of the
  shopper's probability lies in each zone, so a fix 20 cm over an edge counts as "either side",
  not as "the other side";
* **PIR activity per zone**: a zone whose PIR is quiet (the agent reports "inactive" only after
  ``hold_off_s`` without motion) holds nobody who is moving, which rules that zone out at once;
  motion in a zone makes it likelier for the shoppers *near* it, and only as much as the zone's
  own busy-ness leaves unexplained (a PIR that is on most of the day says little about any one
  shopper);
* **which zones touch**: a shopper moves from a zone only to a zone it touches, or to the aisle;
  nobody is in Women's one second and in Sport the next (the aisle lies between them). With 2 s
  between probes a walker can cross a narrow zone's corner between two updates, so the
  transition spreads over ``ceil(dt / HOP_S)`` hops.

States are the plan's zones plus the aisle (no zone, None). Each update is one forward step of the
HMM: predict with the transition matrix for the elapsed time, weigh by the evidence, normalise.
The shown zone switches when another state's probability exceeds the current one's by
``switch_ratio`` (a margin, not a fixed dead band: the doubt is already in the probabilities).
Live: no look-ahead; each decision uses only what arrived before it.

One :class:`ZoneModel` per store (plan, adjacency, PIR board), one :class:`ZoneFilter` per shopper.
The aggregator's fusion (``aggregator/fusion.py``) and the positioning benchmark use these same
classes. Parameters were chosen on a development seed of the demo-store benchmark and scored on
another (docs/POSITIONING.md, "Zone decisions").
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from agent.geometry import Plan, Zone
from agent.positioning.motion import Motion
from agent.positioning.zones import _is_rectangle, distance_outside

# Mean time a shopper stays in a department before moving on. Chosen on the demo store's
# development seed (1) from 5 / 10 / 20 / 30 / 60 s (docs/POSITIONING.md, "Zone decisions").
STAY_TAU_S = 30.0
# Aisles are walked through, not browsed: the aisle's own stay is short (dev seed: 1.5 / 3 / 10 s)
# and a shopper the filter sees standing still is likelier in a department than in the aisle.
AISLE_TAU_S = 1.5
STILL_MPS = 0.3  # slower than this (the filter's speed) is standing, browsing; walking is 0.7-1.3 m/s
AISLE_STILL = 0.3  # evidence factor for the aisle while standing (dev seed: 0.1 / 0.3 / 1)
HOP_S = 1.0  # a walker crosses ~1 m per second (WALK_SPEED_MPS 0.7-1.3 in agent/mock/world.py)
MAX_HOPS = 60  # beyond a minute without a report every state is reachable anyway
TOUCH_M = 0.3  # zones this close touch (the seed-000 rectangles are 6 px = 0.12 m apart)
# Emission floor: no single fix may rule a state out (a 10 % share of fixes is 6 dB off, see the
# benchmark's noise model); small enough that a PIR in a far zone cannot pull a shopper there.
EMISSION_FLOOR = 1e-4
# PIR: chance it reports a shopper who is in its zone. Ceiling-mounted PIRs miss a shopper who
# stands very still; 0.9 is an assumption (no measurement of ours), kept below 1 so a missed
# detection cannot lock a shopper out of their zone for good.
PIR_DETECT = 0.9
# P(a zone's PIR is active | this shopper is not there) is the zone's busy share (others moving in
# it), learnt per zone over BUSY_TAU_S and kept inside these bounds so a few minutes of data cannot
# make it decisive.
BUSY_TAU_S = 600.0
BUSY_MIN, BUSY_MAX, BUSY_PRIOR = 0.2, 0.95, 0.5
# The filter's Gaussian is a running average of many fixes, not a new independent reading: its
# zone shares, taken whole at every update, would count each fix again and again. Raised to this
# power they count about once per update (dev seed: 0.2 / 0.35 / 0.5 / 0.7 / 1).
EVIDENCE_POWER = 0.5
SWITCH_RATIO = 1.5
# Zones are judged where the filter expects the shopper half a probe interval on (its velocity, with
# the velocity's doubt added): a prediction, not a look-ahead. Dev seed, 40 shoppers: lead 0 / 1 / 2 /
# 3 s gave zone 86.7 / 86.7 / 85.8 / 84.1 % and lag p95 6.1 / 5.5 / 5.9 / 5.5 s, median 2.9 / 2.3 / 2.0 / 1.6 s.
LEAD_S = 1.0  # another state must be this much likelier than the shown one (dev seed: 1 / 1.5 / 3)
MIN_SD_M = 0.05


@dataclass(slots=True)
class _Pir:
    """One zone's PIR activity, or one area PIR's (:attr:`PirBoard.area_state`): which sensors are active
    now, and how busy the zone (or the area) has been."""

    active: set[str]
    since_ts: float  # when the zone's state (any sensor active or none) last changed
    busy: float = BUSY_PRIOR
    seen: bool = False  # no report yet: the zone's state is unknown, no evidence


Rect = tuple[float, float, float, float]  # x0, y0, x1, y1 in plan pixels


class PirBoard:
    """PIR state from the agents' motion reports (``active`` at once, inactive after hold-off).

    A PIR watches either a whole zone (the default: its reports count for the zone, with every other PIR
    of that zone) or, when the device file gives it an ``area``, that rectangle of the plan alone: a strip
    along a department's opening or a stretch of aisle (``areas``: sensor name -> rectangle in plan
    pixels, sensor names as :meth:`motion` gets them). Zone PIRs weigh the zone HMM's states and the grid's
    cells; area PIRs weigh only the grid's cells (their rectangle is not a state of the HMM).
    """

    def __init__(self, plan: Plan, areas: dict[str, Rect] | None = None) -> None:
        self.plan = plan
        self._index = {z.name: i for i, z in enumerate(plan.zones)}
        self.zones: dict[int, _Pir] = {}
        self.areas: dict[str, Rect] = dict(areas or {})
        self.area_state: dict[str, _Pir] = {}
        self.version = 0  # counts reports: caches built from the board's evidence key on it
        # per state, the product of every PIR's likelihood, for moving and for standing shoppers:
        # recomputed only when a report arrives (reports are rare next to fixes)
        self._factors: dict[bool, list[float] | None] = {}

    def motion(self, zone: str, sensor: str, active: bool, ts: float) -> bool:
        """Record a PIR report; False (ignored) when ``zone`` is not on the plan (and no area is known)."""
        if sensor in self.areas:
            pir = self.area_state.get(sensor)
            if pir is None:
                pir = self.area_state[sensor] = _Pir(set(), ts)
        else:
            i = self._index.get(zone)
            if i is None:
                return False
            pir = self.zones.get(i)
            if pir is None:
                pir = self.zones[i] = _Pir(set(), ts)
        was = bool(pir.active)
        if pir.seen and ts > pir.since_ts:  # the busy share, decayed over BUSY_TAU_S
            w = math.exp(-(ts - pir.since_ts) / BUSY_TAU_S)
            pir.busy = pir.busy * w + (1.0 - w) * (1.0 if was else 0.0)
        if active:
            pir.active.add(sensor)
        else:
            pir.active.discard(sensor)
        if bool(pir.active) != was or not pir.seen:
            pir.since_ts = max(ts, pir.since_ts)
        pir.seen = True
        self._factors.clear()
        self.version += 1
        return True

    def factors(self, *, moving: bool) -> list[float] | None:
        """Per state (zones, then the aisle): the zone PIRs' joint likelihood, or None when they say nothing."""
        if moving not in self._factors:
            states = len(self.plan.zones) + 1
            out = [1.0] * states
            found = self.likelihoods(moving=moving)
            for i, in_zone, elsewhere in found:
                for j in range(states):
                    out[j] *= in_zone if j == i else elsewhere
            self._factors[moving] = out if found else None
        return self._factors[moving]

    def _speaks(self) -> bool:
        """Every PIR silent at once is more likely PIRs that see nothing (a dead bus, a cold start) than a
        store of statues: then the decision falls back to the RSSI position alone."""
        return any(pir.active for pir in self.zones.values()) or any(pir.active for pir in self.area_state.values())

    def likelihoods(self, *, moving: bool) -> list[tuple[int, float, float]]:
        """(zone index, P(evidence | shopper in it), P(evidence | shopper elsewhere)) per reporting zone.

        A quiet PIR speaks only of shoppers who move (one standing at a rack may not trigger it),
        and only while some PIR of the store is active (:meth:`_speaks`).
        """
        if not self._speaks():
            return []
        return [(i, *found) for i, pir in self.zones.items() if (found := _evidence(pir, moving)) is not None]

    def area_likelihoods(self, *, moving: bool) -> list[tuple[str, float, float]]:
        """(sensor, P(evidence | shopper in its area), P(evidence | shopper elsewhere)) per reporting area PIR."""
        if not self._speaks():
            return []
        return [(s, *found) for s, pir in self.area_state.items() if (found := _evidence(pir, moving)) is not None]


def _evidence(pir: _Pir, moving: bool) -> tuple[float, float] | None:
    """One PIR's (P(its state | the shopper in its view), P(its state | the shopper elsewhere)), or None.

    Active: the shopper was seen, or someone else moved there (the PIR's busy share); quiet: the shopper
    was missed *and* nobody else moved there. A quiet PIR says nothing of a standing shopper."""
    if not pir.seen or (not pir.active and not moving):
        return None
    busy = min(max(pir.busy, BUSY_MIN), BUSY_MAX)
    quiet_if_in = (1.0 - PIR_DETECT) * (1.0 - busy)
    if pir.active:
        return 1.0 - quiet_if_in, busy
    return quiet_if_in, 1.0 - busy


class ZoneModel:
    """A store's zone graph (which zones touch, where each lies in metres) and its PIR board."""

    def __init__(self, plan: Plan, *, pirs: PirBoard | None = None, stay_tau_s: float = STAY_TAU_S,
                 aisle_tau_s: float = AISLE_TAU_S, aisle_still: float = AISLE_STILL,
                 switch_ratio: float = SWITCH_RATIO, touch_m: float = TOUCH_M,
                 evidence_power: float = EVIDENCE_POWER, lead_s: float = LEAD_S) -> None:
        if not (stay_tau_s > 0 and math.isfinite(stay_tau_s)):
            raise ValueError(f"stay_tau_s must be a positive number, got {stay_tau_s!r}")
        if not (switch_ratio >= 1 and math.isfinite(switch_ratio)):
            raise ValueError(f"switch_ratio must be a number >= 1, got {switch_ratio!r}")
        self.plan = plan
        self.zones: tuple[Zone, ...] = plan.zones
        self.pirs = pirs
        self.switch_ratio = float(switch_ratio)
        self.evidence_power = float(evidence_power)
        self.lead_s = float(lead_s)
        # shares are raised to evidence_power: sqrt for the default 0.5 (cheaper than ** in the hot path)
        power = self.evidence_power
        self._lift = math.sqrt if power == 0.5 else (lambda m: m ** power)
        self._floor_lifted = self._lift(EMISSION_FLOOR)
        self.aisle = len(self.zones)  # the state index of "no zone"
        self.neighbours = _neighbours(self.zones, plan.length_m_to_px(touch_m))
        mpp = plan.metres_per_px
        self._rects = [tuple(c * mpp for c in z.bbox) if _is_rectangle(z) else None for z in self.zones]
        self.aisle_still = float(aisle_still)
        self._stay = [math.exp(-HOP_S / stay_tau_s)] * len(self.zones) + [math.exp(-HOP_S / aisle_tau_s)]
        self._powers: list[list[list[float]]] = [_identity(self.aisle + 1), self._one_hop()]
        self._columns: dict[int, tuple[tuple[float, ...], ...]] = {}

    def touching(self, a: str | None, b: str | None) -> bool:
        """May a shopper go from zone ``a`` to zone ``b`` directly (None is the aisle)?"""
        names = [z.name for z in self.zones]
        i = self.aisle if a is None else names.index(a)
        j = self.aisle if b is None else names.index(b)
        return i == j or j in self.neighbours[i]

    def _one_hop(self) -> list[list[float]]:
        n = self.aisle + 1
        matrix = [[0.0] * n for _ in range(n)]
        for i in range(n):
            matrix[i][i] = self._stay[i]
            share = (1.0 - self._stay[i]) / len(self.neighbours[i])
            for j in self.neighbours[i]:
                matrix[i][j] = share
        return matrix

    def transition(self, dt_s: float) -> list[list[float]]:
        """P(state j now | state i ``dt_s`` ago): the one-hop matrix to the power ceil(dt / HOP_S)."""
        hops = 0 if dt_s <= 0 else min(MAX_HOPS, math.ceil(dt_s / HOP_S - 1e-9))
        while len(self._powers) <= hops:
            self._powers.append(_matmul(self._powers[-1], self._powers[1]))
        return self._powers[hops]

    def prior(self, probs: list[float], dt_s: float) -> list[float]:
        """The state probabilities ``dt_s`` later: ``probs`` times :meth:`transition`."""
        hops = 0 if dt_s <= 0 else min(MAX_HOPS, math.ceil(dt_s / HOP_S - 1e-9))
        columns = self._columns.get(hops)
        if columns is None:
            columns = self._columns[hops] = tuple(zip(*self.transition(dt_s), strict=True))
        return [sum(map(operator.mul, probs, column)) for column in columns]

    def position_evidence(self, motion: Motion) -> list[float]:
        """Share of the filter's Gaussian in each zone, the rest in the aisle, each floored."""
        moving = motion.vx_mps * motion.vx_mps + motion.vy_mps * motion.vy_mps >= STILL_MPS * STILL_MPS
        lead = self.lead_s if moving else 0.0  # a shopper standing at a rack is going nowhere
        x_m = motion.x_m + motion.vx_mps * lead
        y_m = motion.y_m + motion.vy_mps * lead
        sx = math.sqrt(max(motion.var_x + lead * lead * motion.var_vx, MIN_SD_M * MIN_SD_M))
        sy = math.sqrt(max(motion.var_y + lead * lead * motion.var_vy, MIN_SD_M * MIN_SD_M))
        kx, ky = _INV_SQRT2 / sx, _INV_SQRT2 / sy
        erf = math.erf
        lift = self._lift
        floor_lifted = self._floor_lifted
        reach_x, reach_y = 8.5 * sx, 8.5 * sy
        out = []
        inside = 0.0
        for zone, rect in zip(self.zones, self._rects, strict=True):
            if rect is None:
                mass = self._polygon_mass(zone, x_m, y_m, sx, sy)
                inside += mass
                out.append(lift(mass + EMISSION_FLOOR))
                continue
            x0, y0, x1, y1 = rect
            # A zone more than 8.5 sigmas away holds less than 1e-17 of the Gaussian, nothing next to
            # EMISSION_FLOOR: skipped (most zones, for most fixes).
            if x_m + reach_x < x0 or x_m - reach_x > x1 or y_m + reach_y < y0 or y_m - reach_y > y1:
                out.append(floor_lifted)
                continue
            # P(x0 <= X <= x1) * P(y0 <= Y <= y1), as _interval, inlined: this runs for every fix
            px = 0.5 * (erf((x1 - x_m) * kx) - erf((x0 - x_m) * kx))
            py = 0.5 * (erf((y1 - y_m) * ky) - erf((y0 - y_m) * ky))
            mass = px * py if px > 0.0 and py > 0.0 else 0.0
            inside += mass
            out.append(lift(mass + EMISSION_FLOOR))
        rest = 1.0 - inside
        out.append(lift((rest if rest > 0.0 else 0.0) + EMISSION_FLOOR))
        if not moving:
            out[-1] *= self.aisle_still
        return out

    def _polygon_mass(self, zone: Zone, x_m: float, y_m: float, sx: float, sy: float) -> float:
        """A polygon's share of the Gaussian on a 5 x 5 Gauss-Hermite grid (rectangles are exact)."""
        mpp = self.plan.metres_per_px
        total = 0.0
        for ox, wx in _NODES:
            for oy, wy in _NODES:
                if zone.contains(((x_m + ox * sx) / mpp, (y_m + oy * sy) / mpp)):
                    total += wx * wy
        return total


# The 5-point Gauss-Hermite rule for a standard normal (nodes in sigmas, weights summing to 1).
_NODES = ((-2.856970, 0.011257), (-1.355626, 0.222076), (0.0, 0.533333), (1.355626, 0.222076),
          (2.856970, 0.011257))


_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def _interval(mean: float, sd: float, lo: float, hi: float) -> float:
    """P(lo <= X <= hi) for X ~ N(mean, sd^2)."""
    k = 1.0 / (sd * math.sqrt(2.0))
    return max(0.0, 0.5 * (math.erf((hi - mean) * k) - math.erf((lo - mean) * k)))


def _neighbours(zones: Sequence[Zone], touch_px: float) -> list[list[int]]:
    """Per state, the states one hop away: zones within ``touch_px`` of each other, and the aisle."""
    aisle = len(zones)
    out: list[list[int]] = []
    for i, a in enumerate(zones):
        near = [j for j, b in enumerate(zones) if j != i and _gap_px(a, b) <= touch_px]
        out.append([*near, aisle])
    out.append(list(range(aisle)))  # the aisle reaches every zone
    return out


def _gap_px(a: Zone, b: Zone) -> float:
    """The smallest distance between two zones' outlines (0 when they overlap or share an edge)."""
    return min(min(distance_outside(b, p) for p in a.polygon), min(distance_outside(a, p) for p in b.polygon))


def _identity(n: int) -> list[list[float]]:
    return [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]


def _matmul(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    cols = list(zip(*b, strict=True))
    return [[sum(x * y for x, y in zip(row, col, strict=True)) for col in cols] for row in a]


class ZoneFilter:
    """One shopper's HMM over the zones: :meth:`update` with each motion-filter state, get the zone."""

    __slots__ = ("_ts", "model", "probs", "state")

    def __init__(self, model: ZoneModel) -> None:
        self.model = model
        self.probs: list[float] | None = None
        self.state: int | None = None  # the shown state index (model.aisle: the aisle)
        self._ts = 0.0

    @property
    def zone(self) -> Zone | None:
        state = self.state
        return None if state is None or state == self.model.aisle else self.model.zones[state]

    def update(self, ts: float, motion: Motion) -> Zone | None:
        """One forward step with the filter's state at ``ts``; returns the zone shown now (None: aisle)."""
        model = self.model
        evidence = model.position_evidence(motion)
        if model.pirs is not None:
            moving = motion.vx_mps * motion.vx_mps + motion.vy_mps * motion.vy_mps >= STILL_MPS * STILL_MPS
            factors = model.pirs.factors(moving=moving)
            if factors is not None:
                evidence = list(map(operator.mul, evidence, factors))
        probs = self.probs
        post = evidence if probs is None else list(map(operator.mul, model.prior(probs, ts - self._ts), evidence))
        total = sum(post)
        if not total > 0.0 or not math.isfinite(total):
            post, total = evidence, sum(evidence)  # evidence contradicting every state: start afresh
        self.probs = [p / total for p in post]
        self._ts = max(ts, self._ts)
        self._decide()
        return self.zone

    def _decide(self) -> None:
        probs = self.probs
        assert probs is not None
        best = 0
        for i in range(1, len(probs)):  # the first most likely state, as max(range, key=...)
            if probs[i] > probs[best]:
                best = i
        state = self.state
        if state is None:
            self.state = best
        elif probs[best] > probs[state] * self.model.switch_ratio:
            # zones that do not touch: the shopper crossed the aisle between two updates; show it
            # first, so the zone sequence never goes through a wall (dwell and offers read it)
            self.state = best if best in self.model.neighbours[state] else self.model.aisle

    def reset(self) -> None:
        self.probs = None
        self.state = None
        self._ts = 0.0

