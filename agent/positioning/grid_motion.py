"""How a shopper's probability moves between two probes on the grid: the two motion modes' kernels.

The grid filter (:mod:`agent.positioning.grid_filter`) keeps one posterior per motion mode, each a
(ny, nx) array over cells of unequal widths (cut at the zones' edges). Between probes the mass
moves as ``P' = Ky P Kx^T``: a Gaussian per axis, each source column renormalised over the plan so
no mass leaks at a wall. A standing shopper barely spreads; a walker spreads at ``walk_mps`` x the
gap, most of it along the walking mode's own heading. The kernels depend only on the gap (and the
heading), so they are built once and cached: quarter seconds of gap, 0.1 m of heading shift.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import numpy as np

DTYPE = np.float32  # the posterior needs no more (sums of ~1,300 cells), and half the bytes move faster
MAX_GAP_S = 60.0  # beyond this the spread no longer grows (the grid is nearly flat anyway)


class GridMotion:
    """The motion kernels of one grid (cell centres and widths per axis) and their caches."""

    def __init__(self, cell_x: np.ndarray, width_x: np.ndarray, cell_y: np.ndarray, width_y: np.ndarray, *,
                 walk_mps: float, stand_mps: float, stand_tau_s: float, walk_tau_s: float,
                 heading_sd_mps: float) -> None:
        self.cell_x, self.width_x, self.cell_y, self.width_y = cell_x, width_x, cell_y, width_y
        self.walk_mps, self.stand_mps = float(walk_mps), float(stand_mps)
        self.stand_tau_s, self.walk_tau_s = float(stand_tau_s), float(walk_tau_s)
        self.heading_sd_mps = float(heading_sd_mps)  # the share along the heading comes with each call
        self._spread: dict[int, tuple[np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray, float, float]] = {}
        self._shifted: dict[tuple[int, ...], np.ndarray] = {}

    def spread(self, dt_s: float) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray, float, float]:
        """For a gap of ``dt_s``: (standing Ky, Kx, walking Ky, Kx, P(stand -> walk), P(walk -> stand)).

        The standing matrices are None when they move nothing (a spread far below every cell).

        Mass moves as ``P' = Ky P Kx^T`` in each mode after the modes mix."""
        key = round(min(max(dt_s, 0.0), MAX_GAP_S) * 4.0)  # quarter seconds
        found = self._spread.get(key)
        if found is None:
            dt = key / 4.0
            standing = self.stand_mps * dt
            sky, skx = axis(self.cell_y, self.width_y, standing), axis(self.cell_x, self.width_x, standing)
            still = _identity(sky) and _identity(skx)
            found = self._spread[key] = (
                None if still else sky,
                None if still else skx,
                axis(self.cell_y, self.width_y, self.walk_mps * dt),
                axis(self.cell_x, self.width_x, self.walk_mps * dt),
                1.0 - math.exp(-dt / self.stand_tau_s), 1.0 - math.exp(-dt / self.walk_tau_s))
        return found

    def walking_kernels(self, vx: float, vy: float, share: float, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(Ky, Kx^T), each two matrices stacked (2, n, n): the walking mass's moves over a gap of ``dt_s``.

        The first of each pair moves ``share`` of it (0 .. 1, cached by 0.05) by (vx, vy) x the gap with
        heading_sd_mps of doubt (cached by 0.1 m of shift), the second spreads the rest every way at
        walk_mps; the walking prior is ``(Ky @ P @ Kx^T).sum(axis=0)``, two batched products for the
        four. Cached per axis, so a heading's x and y shifts are reused across each other's values."""
        dt = min(max(dt_s, 0.0), MAX_GAP_S)
        sd_key = round(self.heading_sd_mps * dt * 20.0)  # 5 cm
        gap_key = round(dt * 4.0)  # the spread's own cache key (quarter seconds)
        kx = (1, round(vx * dt * 10.0), sd_key, gap_key)
        share_key = round(min(max(share, 0.0), 1.0) * 20.0)  # 0.05
        ky = (0, round(vy * dt * 10.0), sd_key, gap_key, share_key)
        cache = self._shifted
        if len(cache) > 4096:
            cache.clear()
        mx = cache.get(kx)
        my = cache.get(ky)
        if mx is None or my is None:
            _sky, _skx, wky, wkx, _to_walk, _to_stand = self.spread(dt)
            if mx is None:
                shifted = shifted_axis(self.cell_x, self.width_x, kx[1] / 10.0, sd_key / 20.0)
                mx = cache[kx] = stacked(shifted.T, wkx.T)
            if my is None:
                # the y matrices carry the shares of the walking mass
                shifted = shifted_axis(self.cell_y, self.width_y, ky[1] / 10.0, sd_key / 20.0)
                sh = share_key / 20.0
                my = cache[ky] = stacked(shifted * DTYPE(sh), wky * DTYPE(1.0 - sh))
        return my, mx


def _identity(k: np.ndarray) -> bool:
    """Whether ``k`` moves no mass (the identity to float32's precision: a spread far below every cell),
    so the update can skip two products that would change nothing."""
    return float(np.abs(k - np.eye(len(k), dtype=k.dtype)).max()) < 1e-6


def stacked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.stack((a, b)))


def shifted_axis(centres: np.ndarray, widths: np.ndarray, shift: float, sd: float) -> np.ndarray:
    """:func:`axis` with the Gaussian centred ``shift`` metres from each source cell."""
    diff = centres[:, None] - centres[None, :] - shift
    k = widths[:, None] * np.exp(-0.5 * (diff / max(sd, 1e-3)) ** 2)
    return (k / k.sum(axis=0, keepdims=True)).astype(DTYPE)


def edges(length_m: float, cuts: Iterable[float], cell_m: float) -> np.ndarray:
    """Cell edges along one axis: 0, the ``cuts`` inside (0, length), ``length``, then even cuts <= cell_m apart."""
    fixed = sorted({0.0, length_m, *(c for c in cuts if 0.0 < c < length_m)})
    out = [0.0]
    for a, b in itertools.pairwise(fixed):
        parts = max(1, math.ceil((b - a) / cell_m - 1e-9))
        out.extend(a + (b - a) * (i + 1) / parts for i in range(parts))
    return np.asarray(out)


def axis(centres: np.ndarray, widths: np.ndarray, sd: float) -> np.ndarray:
    """One axis of the spread: a Gaussian of ``sd`` over the cells (weighed by their widths), each source
    column renormalised over the plan (no mass leaks at a wall); a spread far below a cell is no spread."""
    diff = centres[:, None] - centres[None, :]  # [to, from]
    k = widths[:, None] * np.exp(-0.5 * (diff / max(sd, 1e-3)) ** 2)
    return (k / k.sum(axis=0, keepdims=True)).astype(DTYPE)
