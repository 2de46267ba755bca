"""Where a shopper is, and in which department, from the RSSI itself: a grid (point-mass) Bayes filter.

The solver-then-Kalman chain (:mod:`agent.positioning.locator`, then the zone HMM of
:mod:`agent.positioning.zone_filter`) turns each probe into one fix first. With 12 sniffers of
unequal quality that fix is biased near a department's edge or the plan's wall (a shopper standing
still 200 s stays 0.9-1.4 m off, docs/POSITIONING.md), and no amount of filtering after it removes
a bias. Here every probe weighs the whole plan instead:

* the plan is cut into cells of ``cell_m``; for each cell and sniffer the expected RSSI comes from
  the same path-loss model the agent uses (the sniffer's walk-test calibration, 3-D distance from a
  phone ``PHONE_HEIGHT_M`` up to the sniffer's height);
* a sniffer that **heard** the probe multiplies each cell by the likelihood of its RSSI: Gaussian
  shadowing of ``sigma_db`` mixed with a ``tail_share`` of readings ``tail_db`` weaker (a body or a
  shelf in the way);
* a sniffer that did **not** hear it multiplies each cell by P(RSSI < its floor): the censored
  reading. This is the evidence a solver throws away, and the one that pulls a shopper near the
  plan's wall away from the sniffers across the store;
* between probes the mass spreads at walking pace: a mixture of a standing shopper (a small spread)
  and a walker (``walk_mps`` x the gap), never outside the plan (each source cell's spread is
  renormalised over the plan, so no mass leaks at the walls and nothing is pulled inwards);
* PIR reports weigh each zone's cells as the zone HMM weighs its states (:class:`PirBoard`).

The position shown is the posterior mean; the zone is the zone holding the most posterior mass,
switched only when another holds ``switch_ratio`` times the shown one's mass, and never straight
between two zones that do not touch (the aisle is shown first, as the HMM does). Live: each
update uses only what came before it.

Cost: the grid is a flat float64 array (~3,800 cells at 0.5 m on the demo store); a heard
RSSI's log-likelihood per cell is cached per sniffer and whole dB, so an update is a sum of a
dozen cached rows, one ``exp``, two small matrix products for the spread and one for the zone
masses. One :class:`GridModel` per store, one :class:`GridFilter` per shopper; the aggregator's
fusion (``aggregator/fusion.py``) and the positioning benchmark use these same classes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from agent.geometry import Plan, Zone
from agent.positioning.calibration import LogDistanceModel
from agent.positioning.zone_filter import STILL_MPS, TOUCH_M, PirBoard, _neighbours
from agent.positioning.zones import _is_rectangle

PHONE_HEIGHT_M = 1.2  # a phone in a hand or a pocket (agent.presence.PHONE_HEIGHT_M)
CELL_M = 0.5
SIGMA_DB = 4.0  # indoor shadowing at 2.4 GHz (calibration.DEFAULT_SIGMA_DB)
TAIL_DB = 6.0  # a body or a shelf in the way: this much weaker ...
TAIL_SHARE = 0.1  # ... on this share of readings
FLOOR_DBM = -90.0  # weaker than this is not heard (the benchmark's and the mock's sniffers)
# The spread between probes, fitted on the development seed (docs/POSITIONING.md, "Grid filter").
WALK_MPS = 1.0  # a walker's spread per second (the mock's walkers: 0.7-1.3 m/s)
STAND_MPS = 0.01  # a standing shopper's drift per second (a spread far below a cell: stays put)
# Two motion modes, each its own grid (a jump-Markov model): standing shoppers stay standing for
# STAND_TAU_S on average, walkers keep walking for WALK_TAU_S (the mock's stops: 20-90 s).
STAND_TAU_S = 60.0
WALK_TAU_S = 15.0
SWITCH_RATIO = 1.5  # another zone must hold this much more mass than the shown one
# The aisle is every part of the plan outside the departments: a spread posterior puts its
# remainder there. Its mass counts for this much of a zone's in the decision (aisles are walked
# through, not browsed; the zone HMM's AISLE_STILL plays the same part).
AISLE_WEIGHT = 0.3
MAX_GAP_S = 60.0  # beyond this the spread no longer grows (the grid is nearly flat anyway)
LOG_FLOOR = -30.0  # a cell's log-likelihood from one sniffer never drops below this (no single reading rules a cell out)


@dataclass(frozen=True, slots=True)
class GridSniffer:
    """One sniffer as the grid needs it: where (metres), how high, its calibration, its floor."""

    x_m: float
    y_m: float
    height_m: float
    model: LogDistanceModel
    floor_dbm: float = FLOOR_DBM


@dataclass(frozen=True, slots=True)
class GridEstimate:
    """The posterior now: mean position (metres), its radial spread, the shown zone (None: aisle)."""

    x_m: float
    y_m: float
    accuracy_m: float
    zone: Zone | None


def _log_normal_mixture(residual: np.ndarray, sigma: float, tail_db: float, tail_share: float) -> np.ndarray:
    """log of (1 - s) N(r; 0, sigma) + s N(r; -tail, sigma), up to a constant (r = reading - expected)."""
    a = np.exp(-0.5 * (residual / sigma) ** 2) * (1.0 - tail_share)
    b = np.exp(-0.5 * ((residual + tail_db) / sigma) ** 2) * tail_share
    return np.maximum(np.log(a + b + 1e-300), LOG_FLOOR)


def _log_below(expected: np.ndarray, floor: float, sigma: float, tail_db: float, tail_share: float) -> np.ndarray:
    """log P(reading < floor) under the same mixture: the censored likelihood of a sniffer that heard nothing."""
    erf = np.vectorize(math.erf, otypes=[float])
    k = 1.0 / (sigma * math.sqrt(2.0))
    main = 0.5 * (1.0 + erf((floor - expected) * k))
    tail = 0.5 * (1.0 + erf((floor - expected + tail_db) * k))
    return np.maximum(np.log((1.0 - tail_share) * main + tail_share * tail + 1e-300), LOG_FLOOR)


class GridModel:
    """A store's grid: cells, expected RSSI per sniffer, zone shares per cell, the spread, the PIR board."""

    def __init__(self, plan: Plan, sniffers: Sequence[GridSniffer], *, pirs: PirBoard | None = None,
                 cell_m: float = CELL_M, sigma_db: float = SIGMA_DB, tail_db: float = TAIL_DB,
                 tail_share: float = TAIL_SHARE, walk_mps: float = WALK_MPS, stand_mps: float = STAND_MPS,
                 stand_tau_s: float = STAND_TAU_S, walk_tau_s: float = WALK_TAU_S, switch_ratio: float = SWITCH_RATIO,
                 aisle_weight: float = AISLE_WEIGHT) -> None:
        if not sniffers:
            raise ValueError("a grid filter needs at least one sniffer")
        if not (cell_m > 0 and math.isfinite(cell_m)):
            raise ValueError(f"cell_m must be a positive number, got {cell_m!r}")
        if not (switch_ratio >= 1 and math.isfinite(switch_ratio)):
            raise ValueError(f"switch_ratio must be a number >= 1, got {switch_ratio!r}")
        self.plan = plan
        self.zones: tuple[Zone, ...] = plan.zones
        self.aisle = len(self.zones)
        self.pirs = pirs
        self.sniffers = tuple(sniffers)
        self.sigma_db, self.tail_db, self.tail_share = float(sigma_db), float(tail_db), float(tail_share)
        self.walk_mps, self.stand_mps = float(walk_mps), float(stand_mps)
        self.stand_tau_s, self.walk_tau_s = float(stand_tau_s), float(walk_tau_s)
        self.switch_ratio = float(switch_ratio)
        self.aisle_weight = float(aisle_weight)
        mpp = plan.metres_per_px
        width_m, height_m = plan.width_px * mpp, plan.height_px * mpp
        # Cell edges: every zone's bounding-box edges, the rest cut evenly at most cell_m apart, so a
        # rectangular zone is whole cells (a shopper standing 10 cm inside it is not half outside).
        self.edges_x = _edges(width_m, [c * mpp for z in self.zones for c in (z.bbox[0], z.bbox[2])], cell_m)
        self.edges_y = _edges(height_m, [c * mpp for z in self.zones for c in (z.bbox[1], z.bbox[3])], cell_m)
        self.nx, self.ny = len(self.edges_x) - 1, len(self.edges_y) - 1
        self.cell_x = 0.5 * (self.edges_x[1:] + self.edges_x[:-1])  # cell centres, metres
        self.cell_y = 0.5 * (self.edges_y[1:] + self.edges_y[:-1])
        self.width_x, self.width_y = np.diff(self.edges_x), np.diff(self.edges_y)
        gx, gy = np.meshgrid(self.cell_x, self.cell_y)  # (ny, nx), row-major: flat index = iy * nx + ix
        self.x_flat, self.y_flat = gx.ravel(), gy.ravel()
        self.cells = self.nx * self.ny
        area = np.outer(self.width_y, self.width_x)
        self.area = area / area.sum()  # the prior before any probe: anywhere on the plan alike
        self.expected = np.empty((len(self.sniffers), self.cells))
        for s, sn in enumerate(self.sniffers):
            dh = sn.height_m - PHONE_HEIGHT_M
            d3 = np.sqrt((self.x_flat - sn.x_m) ** 2 + (self.y_flat - sn.y_m) ** 2 + dh * dh)
            self.expected[s] = sn.model.rssi_at_1m - 10.0 * sn.model.n * np.log10(np.maximum(d3, 0.1))
        self._heard: dict[tuple[int, int], np.ndarray] = {}
        self._unheard = np.stack([_log_below(self.expected[s], sn.floor_dbm, self.sigma_db, self.tail_db,
                                             self.tail_share) for s, sn in enumerate(self.sniffers)])
        self.shares = self._zone_shares()  # (zones + 1, cells)
        # what the zone decision compares: the aisle's mass counts for aisle_weight of a zone's
        self.decision_shares = self.shares.copy()
        self.decision_shares[self.aisle] *= self.aisle_weight
        self.neighbours = _neighbours(self.zones, plan.length_m_to_px(TOUCH_M))
        self._spread: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _zone_shares(self) -> np.ndarray:
        """Per state (zones, then the aisle) and cell, the share of the cell's area in it (5 x 5 samples).

        On a shared edge the first declared zone wins, as :meth:`Plan.zone_at`; rectangles are tested as
        arrays, other polygons point by point."""
        mpp = self.plan.metres_per_px
        offsets = (np.arange(5) + 0.5) / 5.0 - 0.5
        gdx, gdy = np.meshgrid(self.width_x, self.width_y)
        dx, dy = gdx.ravel(), gdy.ravel()
        shares = np.zeros((self.aisle + 1, self.cells))
        for ox in offsets:
            for oy in offsets:
                px = (self.x_flat + ox * dx) / mpp
                py = (self.y_flat + oy * dy) / mpp
                free = np.ones(self.cells, dtype=bool)
                for i, zone in enumerate(self.zones):
                    x0, y0, x1, y1 = zone.bbox
                    inside = free & (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)
                    if not _is_rectangle(zone):
                        for c in np.flatnonzero(inside):
                            inside[c] = zone.contains((float(px[c]), float(py[c])))
                    shares[i, inside] += 1.0 / 25.0
                    free &= ~inside
                shares[self.aisle, free] += 1.0 / 25.0
        return shares

    def log_likelihood(self, heard: Iterable[tuple[int, float]], unheard: Iterable[int]) -> np.ndarray:
        """Per cell, the log-likelihood of one probe: ``heard`` (sniffer index, RSSI dBm) and the ``unheard`` sniffers."""
        total = np.zeros(self.cells)
        for s, rssi in heard:
            key = (s, round(rssi))
            row = self._heard.get(key)
            if row is None:
                row = self._heard[key] = _log_normal_mixture(key[1] - self.expected[s], self.sigma_db,
                                                             self.tail_db, self.tail_share)
            total += row
        for s in unheard:
            total += self._unheard[s]
        return total

    def spread(self, dt_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]:
        """For a gap of ``dt_s``: (standing Ky, Kx, walking Ky, Kx, P(stand -> walk), P(walk -> stand)).

        Mass moves as ``P' = Ky P Kx^T`` in each mode after the modes mix."""
        key = round(min(max(dt_s, 0.0), MAX_GAP_S) * 4.0)  # quarter seconds
        found = self._spread.get(key)
        if found is None:
            dt = key / 4.0
            found = self._spread[key] = (
                _axis(self.cell_y, self.width_y, self.stand_mps * dt), _axis(self.cell_x, self.width_x, self.stand_mps * dt),
                _axis(self.cell_y, self.width_y, self.walk_mps * dt), _axis(self.cell_x, self.width_x, self.walk_mps * dt),
                1.0 - math.exp(-dt / self.stand_tau_s), 1.0 - math.exp(-dt / self.walk_tau_s))
        return found


def _edges(length_m: float, cuts: Iterable[float], cell_m: float) -> np.ndarray:
    """Cell edges along one axis: 0, the ``cuts`` inside (0, length), ``length``, then even cuts <= cell_m apart."""
    fixed = sorted({0.0, length_m, *(c for c in cuts if 0.0 < c < length_m)})
    out = [0.0]
    for a, b in zip(fixed, fixed[1:], strict=False):
        parts = max(1, math.ceil((b - a) / cell_m - 1e-9))
        out.extend(a + (b - a) * (i + 1) / parts for i in range(parts))
    return np.asarray(out)


def _axis(centres: np.ndarray, widths: np.ndarray, sd: float) -> np.ndarray:
    """One axis of the spread: a Gaussian of ``sd`` over the cells (weighed by their widths), each source
    column renormalised over the plan (no mass leaks at a wall); a spread far below a cell is no spread."""
    diff = centres[:, None] - centres[None, :]  # [to, from]
    k = widths[:, None] * np.exp(-0.5 * (diff / max(sd, 1e-3)) ** 2)
    return k / k.sum(axis=0, keepdims=True)


class GridFilter:
    """One shopper's grid posterior: :meth:`update` with each probe's readings, get the estimate."""

    __slots__ = ("_ts", "model", "stand", "state", "walk")

    def __init__(self, model: GridModel) -> None:
        self.model = model
        self.stand: np.ndarray | None = None  # (ny, nx) per mode; the two sum to 1
        self.walk: np.ndarray | None = None
        self.state: int | None = None
        self._ts = 0.0

    @property
    def zone(self) -> Zone | None:
        state = self.state
        return None if state is None or state == self.model.aisle else self.model.zones[state]

    @property
    def walking(self) -> float:
        """P(the shopper is walking), 0 before the first probe."""
        return 0.0 if self.walk is None else float(self.walk.sum())

    def update(self, ts: float, heard: Iterable[tuple[int, float]], unheard: Iterable[int] = ()) -> GridEstimate:
        """One probe at ``ts``: predict over the gap, weigh by its readings (and the PIRs), decide the zone."""
        model = self.model
        loglik = model.log_likelihood(heard, unheard)
        like = np.exp(loglik - loglik.max())
        if model.pirs is not None:
            factors = model.pirs.factors(moving=self.walking >= 0.5)
            if factors is not None:
                like *= np.asarray(factors) @ model.shares
        like = like.reshape(model.ny, model.nx)
        stand = walk = None
        total = 0.0
        if self.stand is not None and self.walk is not None:
            sky, skx, wky, wkx, to_walk, to_stand = model.spread(ts - self._ts)
            s_in = self.stand * (1.0 - to_walk) + self.walk * to_stand
            w_in = self.stand * to_walk + self.walk * (1.0 - to_stand)
            stand = (sky @ s_in @ skx.T) * like
            walk = (wky @ w_in @ wkx.T) * like
            total = float(stand.sum() + walk.sum())
        if stand is None or walk is None or not (total > 0.0 and math.isfinite(total)):
            # the first probe, or readings contradicting every cell: start afresh, standing or walking alike
            stand = walk = 0.5 * like * model.area
            total = float(stand.sum() * 2.0)
        self.stand, self.walk = stand / total, walk / total
        self._ts = max(ts, self._ts)
        post = (self.stand + self.walk).ravel()
        x = float(post @ model.x_flat)
        y = float(post @ model.y_flat)
        var = float(post @ ((model.x_flat - x) ** 2 + (model.y_flat - y) ** 2))
        self._decide(model.decision_shares @ post)
        return GridEstimate(x, y, math.sqrt(max(var, 0.0)), self.zone)

    def _decide(self, masses: np.ndarray) -> None:
        best = int(np.argmax(masses))
        state = self.state
        if state is None:
            self.state = best
        elif masses[best] > masses[state] * self.model.switch_ratio:
            self.state = best if best in self.model.neighbours[state] else self.model.aisle

    def reset(self) -> None:
        self.stand = self.walk = None
        self.state = None
        self._ts = 0.0
