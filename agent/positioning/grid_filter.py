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
* between probes the mass moves in two modes, each its own grid (a jump-Markov model): a standing
  shopper stays put, a walker spreads at ``walk_mps`` x the gap, most of it along the walking
  mode's own heading (a share growing with its speed); shoppers switch modes at random
  (``stand_tau_s``, ``walk_tau_s``). Never outside the plan: each source cell's spread is
  renormalised over the plan, so no mass leaks at the walls and nothing is pulled inwards (the
  kernels: :mod:`agent.positioning.grid_motion`).
  Cells are cut at every zone's edges, so a rectangular zone is whole cells;
* PIR reports weigh each zone's cells as the zone HMM weighs its states (:class:`PirBoard`).

The position shown is the posterior mean; the zone is the zone holding the most posterior mass
(the aisle's counted at ``aisle_weight`` for standing shoppers), switched only when another holds
``switch_ratio`` times the shown one's mass (``walk_switch_ratio`` for walkers), and never straight
between two zones that do not touch faster than a walker crosses the aisle between them
(``cross_mps``: otherwise the aisle is shown first, as the HMM does). Live: each
update uses only what came before it.

Cost: the demo store is 42 x 31 cells of float32 (1 m, cut at the zones' edges); the
log-likelihood of every sniffer at every whole dB (and of "not heard") is a table built once, so
an update is a gather and sum of a dozen rows, one ``exp``, one 2 x 2 product mixing the modes (and
normalising), two batched products for the walking spread (standing does not spread) and one
product for the mean, spread, and zone masses. Reports of one probe burst from several agents
(``BURST_S`` apart) only multiply in their rows. One :class:`GridModel` per store, one
:class:`GridFilter` per shopper; the aggregator's
fusion (``aggregator/fusion.py``) and the positioning benchmark use these same classes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from agent.geometry import Plan, Zone
from agent.positioning.calibration import LogDistanceModel
from agent.positioning.grid_motion import DTYPE, MAX_GAP_S, GridMotion, edges
from agent.positioning.zone_filter import TOUCH_M, PirBoard, _gap_px, _neighbours
from agent.positioning.zones import _is_rectangle

PHONE_HEIGHT_M = 1.2  # a phone in a hand or a pocket (agent.presence.PHONE_HEIGHT_M)
CELL_M = 1.0
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
# A walker keeps going the way they went: this share of the walking mass moves by the walking mode's
# own velocity (its mean's drift, averaged over HEADING_TAU_S) with HEADING_SD_MPS of doubt; the rest
# spreads every way at WALK_MPS (a turn, a new stop).
HEADING_SHARE = 0.8
HEADING_SD_MPS = 0.3
HEADING_TAU_S = 3.0
# A slow heading is an unsure one: it carries its full share only from HEADING_FULL_MPS up, and a
# share in proportion below. The heading is the averaged drift of the walking mode's mean, which
# reads ~0 for a walker just off a stop (dev seeds 1-2: their estimate trailed them by 1.1 m 2-4 s
# after leaving it); with the full share a zero heading held 80 % of the walking mass in place, a
# second standing mode. Dev seeds 1-10 (never seed 0): zone 94.85 -> 94.95 %, lag p95 3.30 -> 3.23 s
# (mean over seeds); 0.4 / 0.6 / 0.8 / 1.0 m/s alike (94.92-94.95 %). Real BLE (calib2021, checked
# after the choice): halves 1.011 -> 1.027 m, the person's walk 0.652 -> 0.600 m off the path.
HEADING_FULL_MPS = 0.6
SWITCH_RATIO = 1.2  # another zone must hold this much more mass than the shown one (dev seed: 1 / 1.2 / 1.5 / 2)
# ... for a standing shopper; for a walker (weighed by P(walking)) this: a walker's zone changes as
# soon as the mass does (dev seed: lag p95 5.2 -> 4.9 s, zone 90.4 -> 90.5 %)
WALK_SWITCH_RATIO = 1.0
# The aisle is every part of the plan outside the departments: a spread posterior puts its
# remainder there. Its mass counts for this much of a zone's in the decision (aisles are walked
# through, not browsed; the zone HMM's AISLE_STILL plays the same part).
AISLE_WEIGHT = 0.3  # of the standing mode's mass
# ... and of the walking mode's: 1 gained 0.4 points on the dev seed but lost a 2 s-step scenario's
# Sport stop (scenarios.offer_match 20 of 21)
AISLE_WALK_WEIGHT = 0.3
# A switch between two zones that do not touch shows the aisle between them first, unless the shopper
# could have walked across it since the last update at this pace (a brisk walk; the mock's walkers
# 0.7-1.3 m/s): then the aisle's stay was shorter than the gap between updates and no decision could
# have shown it, and showing it now only delays the zone (dev seed 1: 0 / 1.1 / 1.3 / 1.5 m/s, lag p95
# 3.74 / 2.98 / 2.98 / 2.98 s, zone 92.2 / 92.5 / 92.5 / 92.5 %).
CROSS_MPS = 1.3
BURST_S = 0.125  # reports this close are one probe burst heard by several agents: no time to move
RSSI_LO, RSSI_HI = -120, 0  # the RSSI the likelihood table covers, whole dB (readings outside are clipped to it)
# a cell's log-likelihood from one sniffer never drops below this (no single reading rules a cell out)
LOG_FLOOR = -30.0
GATHER_PROBES = 32  # log_likelihoods: probes' rows gathered at once (32 x 12 rows x 1,302 cells: 2 MB)


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
                 stand_tau_s: float = STAND_TAU_S, walk_tau_s: float = WALK_TAU_S,
                 heading_share: float = HEADING_SHARE, heading_sd_mps: float = HEADING_SD_MPS,
                 heading_tau_s: float = HEADING_TAU_S, switch_ratio: float = SWITCH_RATIO,
                 aisle_weight: float = AISLE_WEIGHT, aisle_walk_weight: float = AISLE_WALK_WEIGHT,
                 walk_switch_ratio: float | None = WALK_SWITCH_RATIO, cross_mps: float = CROSS_MPS,
                 heading_full_mps: float = HEADING_FULL_MPS) -> None:
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
        self.heading_share, self.heading_tau_s = float(heading_share), float(heading_tau_s)
        if not (heading_full_mps >= 0 and math.isfinite(heading_full_mps)):
            raise ValueError(f"heading_full_mps must be a number >= 0, got {heading_full_mps!r}")
        self.heading_full_mps = float(heading_full_mps)
        self.switch_ratio = float(switch_ratio)
        self.walk_switch_ratio = None if walk_switch_ratio is None else float(walk_switch_ratio)
        self.aisle_weight, self.aisle_walk_weight = float(aisle_weight), float(aisle_walk_weight)
        mpp = plan.metres_per_px
        width_m, height_m = plan.width_px * mpp, plan.height_px * mpp
        # Cell edges: every zone's bounding-box edges, the rest cut evenly at most cell_m apart, so a
        # rectangular zone is whole cells (a shopper standing 10 cm inside it is not half outside).
        # (The area PIRs' rectangles are not cut: on the demo store that added two columns, +6-14 % fusion
        # cost with PIR traffic, for 0.04 points of zones and 0.05 s of lag on the dev seeds; a cell partly
        # in a PIR's view weighs by its share, pir_cells.)
        self.edges_x = edges(width_m, [c * mpp for z in self.zones for c in (z.bbox[0], z.bbox[2])], cell_m)
        self.edges_y = edges(height_m, [c * mpp for z in self.zones for c in (z.bbox[1], z.bbox[3])], cell_m)
        self.nx, self.ny = len(self.edges_x) - 1, len(self.edges_y) - 1
        self.cell_x = 0.5 * (self.edges_x[1:] + self.edges_x[:-1])  # cell centres, metres
        self.cell_y = 0.5 * (self.edges_y[1:] + self.edges_y[:-1])
        self.width_x, self.width_y = np.diff(self.edges_x), np.diff(self.edges_y)
        gx, gy = np.meshgrid(self.cell_x, self.cell_y)  # (ny, nx), row-major: flat index = iy * nx + ix
        self.x_flat, self.y_flat = gx.ravel(), gy.ravel()
        self.cells = self.nx * self.ny
        area = np.outer(self.width_y, self.width_x)
        self.area = (area / area.sum()).astype(DTYPE)  # the prior before any probe: anywhere on the plan alike
        self.expected = np.empty((len(self.sniffers), self.cells))
        for s, sn in enumerate(self.sniffers):
            dh = sn.height_m - PHONE_HEIGHT_M
            d3 = np.sqrt((self.x_flat - sn.x_m) ** 2 + (self.y_flat - sn.y_m) ** 2 + dh * dh)
            self.expected[s] = sn.model.rssi_at_1m - 10.0 * sn.model.n * np.log10(np.maximum(d3, 0.1))
        # Log-likelihood rows, one per sniffer and whole dB from RSSI_LO to RSSI_HI, then one for "not
        # heard": a probe's log-likelihood is the sum of one row per sniffer (a gather and a sum).
        levels = np.arange(RSSI_LO, RSSI_HI + 1, dtype=float)
        self._row_stride = len(levels) + 1
        table = np.empty((len(self.sniffers), self._row_stride, self.cells))
        for s, sn in enumerate(self.sniffers):
            table[s, :-1] = _log_normal_mixture(levels[:, None] - self.expected[s][None, :], self.sigma_db,
                                                self.tail_db, self.tail_share)
            table[s, -1] = _log_below(self.expected[s], sn.floor_dbm, self.sigma_db, self.tail_db, self.tail_share)
        # ... and a last row of zeros: what several probes' gathers are padded with (log_likelihoods)
        self._table = np.vstack([table.reshape(len(self.sniffers) * self._row_stride, self.cells),
                                 np.zeros((1, self.cells))]).astype(DTYPE)
        self._zero_row = len(self._table) - 1
        self.shares = self._zone_shares()  # (zones + 1, cells)
        self.neighbours = _neighbours(self.zones, plan.length_m_to_px(TOUCH_M))
        # metres between each two zones' outlines: a switch between zones that do not touch skips the
        # aisle only when a walker at cross_mps could have crossed it since the last update
        self.gaps_m = [[_gap_px(a, b) * mpp for b in self.zones] for a in self.zones]
        self.cross_mps = float(cross_mps)
        # columns: x, y, x^2 + y^2, 1, then the decision's zone shares (posterior @ moments: mean, spread,
        # mass, zone masses)
        self.moments = np.column_stack([self.x_flat, self.y_flat, self.x_flat ** 2 + self.y_flat ** 2,
                                        np.ones(self.cells), self.shares.T]).astype(DTYPE)
        self._pir_cells: dict[bool, tuple[int, np.ndarray | None]] = {}
        # per area PIR, the share of each cell (ny, nx) inside its rectangle; stacked (PIRs, cells) so a
        # report's weights are one product
        self.pir_cover = {sensor: self._rect_shares(rect).reshape(self.ny, self.nx)
                          for sensor, rect in (pirs.areas.items() if pirs is not None else ())}
        self._pir_row = {sensor: i for i, sensor in enumerate(self.pir_cover)}
        self._pir_stack = (np.stack([c.ravel() for c in self.pir_cover.values()]) if self.pir_cover
                           else np.zeros((0, self.cells)))
        self.motion = GridMotion(self.cell_x, self.width_x, self.cell_y, self.width_y, walk_mps=walk_mps,
                                 stand_mps=stand_mps, stand_tau_s=stand_tau_s, walk_tau_s=walk_tau_s,
                                 heading_sd_mps=heading_sd_mps)

    def _samples(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """5 x 5 points evenly inside every cell, one point per cell at a time: (x, y) arrays in plan pixels.

        A cell's share of a zone or a PIR's view is the part of its points inside: cells are cut at the
        zones' edges but not at the area PIRs', so a cell may be partly in view."""
        mpp = self.plan.metres_per_px
        offsets = (np.arange(5) + 0.5) / 5.0 - 0.5
        gdx, gdy = np.meshgrid(self.width_x, self.width_y)
        dx, dy = gdx.ravel(), gdy.ravel()
        for ox in offsets:
            for oy in offsets:
                yield (self.x_flat + ox * dx) / mpp, (self.y_flat + oy * dy) / mpp

    def _zone_shares(self) -> np.ndarray:
        """Per state (zones, then the aisle) and cell, the share of the cell's area in it (:meth:`_samples`).

        On a shared edge the first declared zone wins, as :meth:`Plan.zone_at`; rectangles are tested as
        arrays, other polygons point by point."""
        shares = np.zeros((self.aisle + 1, self.cells))
        for px, py in self._samples():
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

    def _rect_shares(self, rect: tuple[float, float, float, float]) -> np.ndarray:
        """Per cell, the share of its area inside ``rect`` (plan pixels; :meth:`_samples`, as the zones)."""
        x0, y0, x1, y1 = rect
        out = np.zeros(self.cells)
        for px, py in self._samples():
            out += ((px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)) / 25.0
        return out

    def heading_share_at(self, vx: float, vy: float) -> float:
        """The share of the walking mass that goes on along a heading of (vx, vy) m/s (HEADING_FULL_MPS)."""
        speed = math.hypot(vx, vy)
        if speed < self.heading_full_mps:
            return self.heading_share * speed / self.heading_full_mps
        return self.heading_share

    def pir_cells(self, moving: bool) -> np.ndarray | None:
        """The PIR board's joint likelihood per cell (ny, nx), or None when the PIRs say nothing.

        Zone PIRs weigh each state's cells; an area PIR weighs the cells it sees by its "in view"
        likelihood and the rest by its "elsewhere" one, both divided by "elsewhere" (a constant). A
        cell partly in view (share c) gets (in / elsewhere)^c, the geometric blend (one product for all
        PIRs; the exact c x in + (1 - c) x elsewhere differs only on the row of cells along the view's
        inner edge)."""
        pirs = self.pirs
        assert pirs is not None
        cached = self._pir_cells.get(moving)
        if cached is not None and cached[0] == pirs.version:
            return cached[1]
        factors = pirs.factors(moving=moving)
        cells = None
        if factors is not None:
            cells = (np.asarray(factors) @ self.shares).reshape(self.ny, self.nx)
        found = [(self._pir_row[s], i, e) for s, i, e in pirs.area_likelihoods(moving=moving) if s in self._pir_row]
        if found:
            # a cell in view of some of them: the product of their "in view" likelihoods and the others'
            # "elsewhere", divided by the product of every "elsewhere" (the same for every cell, so the
            # posterior does not change; left out, 20 PIRs' "elsewhere" cannot shrink it towards float32's
            # floor): exp(the sum of the in-view log ratios)
            ratios = np.zeros(len(self._pir_row))
            for row, in_view, elsewhere in found:
                ratios[row] = math.log(in_view / elsewhere)
            part = np.exp(ratios @ self._pir_stack).reshape(self.ny, self.nx)
            cells = part if cells is None else cells * part
        out = None if cells is None else cells.astype(DTYPE)
        self._pir_cells[moving] = (pirs.version, out)
        return out

    def _rows(self, heard: Iterable[tuple[int, float]], unheard: Iterable[int]) -> list[int]:
        """The table's rows of one probe: one per ``heard`` (sniffer index, RSSI dBm), one per ``unheard`` sniffer."""
        stride = self._row_stride
        rows = []
        for s, rssi in heard:
            level = round(rssi)
            if level < RSSI_LO:
                level = RSSI_LO
            elif level > RSSI_HI:
                level = RSSI_HI
            rows.append(s * stride + level - RSSI_LO)
        rows.extend(s * stride + stride - 1 for s in unheard)
        return rows

    def log_likelihoods(self, probes: Sequence[tuple[Iterable[tuple[int, float]], Iterable[int]]]) -> np.ndarray:
        """(probes, cells): per (heard, unheard) probe and cell, its log-likelihood: the sum of one table
        row per sniffer, in the same order for every probe (a probe with fewer rows adds the table's row
        of zeros), gathered ``GATHER_PROBES`` at a time (their rows stay a few megabytes)."""
        index = [self._rows(heard, unheard) for heard, unheard in probes]
        width = max(map(len, index), default=0)
        if not width:
            return np.zeros((len(index), self.cells), dtype=DTYPE)
        if len(index) == 1:  # one probe (a quiet store, a test): nothing to pad
            return np.add.reduce(self._table[index[0]], axis=0)[None]
        pad = self._zero_row
        padded = np.array([rows + [pad] * (width - len(rows)) for rows in index])
        out = np.empty((len(index), self.cells), dtype=DTYPE)
        for i in range(0, len(index), GATHER_PROBES):
            np.add.reduce(self._table[padded[i:i + GATHER_PROBES]], axis=1, out=out[i:i + GATHER_PROBES])
        return out


class _Heading:
    """The walking mode's velocity: the drift of its mean, averaged."""

    __slots__ = ("before", "ts", "vx", "vy", "x", "y")

    def __init__(self, ts: float, x: float, y: float) -> None:
        self.ts, self.x, self.y, self.vx, self.vy = ts, x, y, 0.0, 0.0
        # the state before the last update: a burst's later reports redo that update with the better mean
        self.before: tuple[float, float, float, float, float] | None = None


class GridFilter:
    """One shopper's grid posterior: :meth:`update` with each probe's readings, get the estimate."""

    __slots__ = ("_gap_s", "_heading", "_post", "_total", "_ts", "_walking", "model", "state")

    def __init__(self, model: GridModel) -> None:
        self.model = model
        # (2, ny, nx): standing, walking; unnormalised, summing to _total (the next update divides by it
        # in the modes' mixing product instead of a pass of its own)
        self._post: np.ndarray | None = None
        self._total = 1.0
        self._walking = 0.0
        self.state: int | None = None
        self._ts = 0.0
        self._gap_s = 0.0  # the gap before the current burst's first report (its later reports decide as it)
        self._heading: _Heading | None = None

    @property
    def stand(self) -> np.ndarray | None:
        """The standing mode's posterior (ny, nx); with :attr:`walk` it sums to 1."""
        return None if self._post is None else self._post[0] / self._total

    @property
    def walk(self) -> np.ndarray | None:
        """The walking mode's posterior (ny, nx)."""
        return None if self._post is None else self._post[1] / self._total

    @property
    def zone(self) -> Zone | None:
        state = self.state
        return None if state is None or state == self.model.aisle else self.model.zones[state]

    @property
    def walking(self) -> float:
        """P(the shopper is walking), 0 before the first probe."""
        return self._walking

    def update(self, ts: float, heard: Iterable[tuple[int, float]], unheard: Iterable[int] = ()) -> GridEstimate:
        """One probe at ``ts``: predict over the gap, weigh by its readings (and the PIRs), decide the zone."""
        return GridFilter.update_many(self.model, [(self, ts, heard, unheard)])[0]

    def _afresh(self, like: np.ndarray) -> tuple[np.ndarray, list[list[float]]]:
        """The first probe, or readings contradicting every cell: start afresh, standing or walking alike."""
        model = self.model
        post = np.empty((2, model.ny, model.nx), dtype=DTYPE)
        post[0] = like * model.area
        post[0] /= post[0].sum() * 2.0
        post[1] = post[0]
        return post, (post.reshape(2, model.cells) @ model.moments).tolist()

    def _settle(self, ts: float, dt: float, burst: bool, post: np.ndarray, stats: list[list[float]]) -> GridEstimate:
        """The posterior after a probe and its moments (the mass, mean, spread, zone masses per mode):
        keep it, follow the heading, decide the zone."""
        model = self.model
        total = stats[0][3] + stats[1][3]
        self._post, self._total = post, total
        self._ts = max(ts, self._ts)
        # each mode's moments over the total (the standing mode's, s, and the walking mode's, w), and both
        inv = 1.0 / total
        s, w = stats
        wx, wy, walking = w[0] * inv, w[1] * inv, w[3] * inv
        self._walking = walking
        self._track_heading(ts, wx, wy, walking, burst)
        if not burst:
            self._gap_s = dt
        x, y, r2 = s[0] * inv + wx, s[1] * inv + wy, s[2] * inv + w[2] * inv
        masses = [a * inv + b * inv for a, b in zip(s[4:-1], w[4:-1], strict=True)]
        masses.append(s[-1] * inv * model.aisle_weight + w[-1] * inv * model.aisle_walk_weight)
        self._decide(masses, walking, self._gap_s)
        return GridEstimate(x, y, math.sqrt(max(r2 - x * x - y * y, 0.0)), self.zone)

    def _track_heading(self, ts: float, wx: float, wy: float, m: float, burst: bool) -> None:
        """The walking mode's mean, from its moments (x and y weighed by its mass, and the mass), and its
        drift averaged over heading_tau_s.

        A burst's later reports refine the mean of the same moment: they redo the burst's update
        rather than add one milliseconds long (the mean shifting with more evidence is no walk)."""
        if not m > 1e-12:
            return
        x, y = wx / m, wy / m
        h = self._heading
        if h is None:
            self._heading = _Heading(ts, x, y)
            return
        if burst:
            if h.before is None:  # the burst's first report started the heading: just its position
                h.x, h.y = x, y
                return
            ts = h.ts
            h.ts, h.x, h.y, h.vx, h.vy = h.before
        dt = ts - h.ts
        if dt > 0.0:
            h.before = (h.ts, h.x, h.y, h.vx, h.vy)
            if dt > MAX_GAP_S / 4.0:  # a long silence: the old heading says nothing
                h.vx = h.vy = 0.0
            else:
                a = min(1.0, dt / self.model.heading_tau_s)
                h.vx += a * ((x - h.x) / dt - h.vx)
                h.vy += a * ((y - h.y) / dt - h.vy)
            h.ts, h.x, h.y = ts, x, y

    def _decide(self, masses: list[float], walking: float, dt: float) -> None:
        best = max(range(len(masses)), key=masses.__getitem__)  # the first most massive, as argmax
        state = self.state
        model = self.model
        # the margin is for shoppers standing at an edge; a walker's zone changes as soon as the mass does
        ratio = model.switch_ratio if model.walk_switch_ratio is None else (
            model.switch_ratio * (1.0 - walking) + model.walk_switch_ratio * walking)
        if state is None:
            self.state = best
        elif masses[best] > masses[state] * ratio:
            if best in model.neighbours[state] or (
                    state != model.aisle and model.gaps_m[state][best] <= model.cross_mps * dt):
                self.state = best
            else:
                self.state = model.aisle

    @staticmethod
    def update_many(model: GridModel, probes: Sequence[Probe]) -> list[GridEstimate]:
        """:meth:`GridFilter.update` of several shoppers at once (each filter once, all of ``model``).

        Why: an update is some twenty numpy calls on arrays of about a thousand cells, and on a busy
        aggregator each call's own overhead was most of its cost. Ingest fuses every shopper heard in a
        slice of messages together, so each step here is one call for all of them. Each shopper's
        arithmetic is what it would be alone, bit for bit: stacked products make one BLAS call per
        shopper, the log-likelihood rows are added in the same order, the rest is element by element.
        """
        n = len(probes)
        if not n:
            return []
        filters = [f for f, _ts, _heard, _unheard in probes]
        if n > 1 and len(set(map(id, filters))) != n:
            raise ValueError("update_many takes each filter at most once")
        like = model.log_likelihoods([(heard, unheard) for _f, _ts, heard, unheard in probes])
        like -= like.max(axis=1, keepdims=True)
        like = np.exp(like, out=like).reshape(n, model.ny, model.nx)
        fresh: list[int] = []
        bursts: list[int] = []
        moves: list[int] = []
        # the PIRs speak of a moment, not of a report: a burst's later reports do not weigh them again;
        # the others by the PIRs' likelihood for standing or for walking shoppers (in ascending order)
        weigh: tuple[list[int], list[int]] = ([], [])
        for k, (f, ts, _heard, _unheard) in enumerate(probes):
            if f._post is None:
                fresh.append(k)
            elif ts - f._ts < BURST_S:  # the same probe burst heard by another agent: no time to move
                bursts.append(k)
                continue
            else:
                moves.append(k)
            weigh[f._walking >= 0.5].append(k)
        if model.pirs is not None:
            for moving, these in enumerate(weigh):
                cells = model.pir_cells(bool(moving)) if these else None
                if cells is not None:
                    like[_together(these)] *= cells
        posts: dict[int, tuple[np.ndarray, list[list[float]]]] = {}
        if bursts:
            last = _stack([filters[k]._post for k in bursts])
            inv = np.array([1.0 / filters[k]._total for k in bursts], dtype=DTYPE)
            _keep(posts, bursts, last * (like[_together(bursts)] * inv[:, None, None])[:, None], model)
        if moves:
            prior = GridFilter._predict(model, [probes[k] for k in moves])
            _keep(posts, moves, prior * like[_together(moves)][:, None], model)
        in_burst = set(bursts)
        out = []
        for k, (f, ts, _heard, _unheard) in enumerate(probes):
            found = posts.get(k)
            if found is not None:
                total = found[1][0][3] + found[1][1][3]
                if not (total > 1e-30 and math.isfinite(total)):
                    found = None  # readings contradicting every cell
            burst = found is not None and k in in_burst
            if found is None:
                found = f._afresh(like[k])
            out.append(f._settle(ts, ts - f._ts, burst, *found))
        return out

    @staticmethod
    def _predict(model: GridModel, probes: Sequence[Probe]) -> np.ndarray:
        """(shoppers, 2, ny, nx): each one's last posterior carried over its gap, the modes mixed, then spread."""
        n = len(probes)
        mixing = []
        totals = []
        spreads = []
        for f, ts, _heard, _unheard in probes:
            spread = model.motion.spread(ts - f._ts)
            spreads.append(spread)
            to_walk, to_stand = spread[4], spread[5]
            mixing.append([[1.0 - to_walk, to_stand], [to_walk, 1.0 - to_stand]])
            totals.append(f._total)
        # the modes mix (one 2 x 2 product each, which also normalises the last posterior), then spread
        mixing_arr = np.array(mixing, dtype=DTYPE) / np.array(totals, dtype=DTYPE)[:, None, None]
        last = _stack([f._post for f, _ts, _heard, _unheard in probes]).reshape(n, 2, model.cells)
        prior = (mixing_arr @ last).reshape(n, 2, model.ny, model.nx)
        ahead: list[int] = []  # walkers with a heading: both kernels carry their share
        kys, kxs = [], []
        for i, ((f, ts, _heard, _unheard), spread) in enumerate(zip(probes, spreads, strict=True)):
            sky, skx, wky, wkx = spread[:4]
            if sky is not None and skx is not None:
                prior[i, 0] = sky @ prior[i, 0] @ skx.T
            heading = f._heading
            if heading is not None and model.heading_share > 0.0:
                # up to heading_share of the walkers go on as they went
                share = model.heading_share_at(heading.vx, heading.vy)
                ky, kx = model.motion.walking_kernels(heading.vx, heading.vy, share, ts - f._ts)
                ahead.append(i)
                kys.append(ky)
                kxs.append(kx)
            else:
                prior[i, 1] = wky @ prior[i, 1] @ wkx.T
        if ahead:
            rows = _together(ahead)
            prior[rows, 1] = ((_stack(kys) @ prior[rows, 1][:, None]) @ _stack(kxs)).sum(axis=1)
        return prior

    def reset(self) -> None:
        self._post = None
        self._total = 1.0
        self._walking = 0.0
        self.state = None
        self._ts = 0.0
        self._gap_s = 0.0
        self._heading = None


Probe = tuple[GridFilter, float, Iterable[tuple[int, float]], Iterable[int]]  # filter, ts, heard, unheard


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """``np.stack(arrays)``; one array is only given an axis (a view: ``np.stack`` alone costs a few µs)."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


def _together(ks: list[int]) -> slice | list[int]:
    """Indices ``ks`` as a slice when they are ``k, k + 1, ...`` (every shopper of the call, or the only
    one): numpy then takes a view instead of copying them out."""
    first = ks[0]
    return slice(first, first + len(ks)) if ks == list(range(first, first + len(ks))) else ks


def _keep(posts: dict[int, tuple[np.ndarray, list[list[float]]]], which: list[int], post: np.ndarray,
          model: GridModel) -> None:
    """Each shopper's posterior (a copy: a view would keep the whole stack alive; one alone is the stack)
    and its moments."""
    stats = (post.reshape(len(which), 2, model.cells) @ model.moments).tolist()
    if len(which) == 1:
        posts[which[0]] = (post[0], stats[0])
        return
    for i, k in enumerate(which):
        posts[k] = (post[i].copy(), stats[i])
