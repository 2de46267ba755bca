"""The grid's motion kernels (agent/positioning/grid_motion.py): mass kept on the plan, moved as the heading says."""

from __future__ import annotations

import numpy as np
import pytest

from agent.positioning.grid_motion import GridMotion, axis, edges

EDGES = edges(20.0, [4.0, 4.12], 1.0)  # a 20 m axis with a 0.12 m cell cut in, as a zone gap
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])
WIDTHS = np.diff(EDGES)
MOTION = GridMotion(CENTRES, WIDTHS, CENTRES, WIDTHS, walk_mps=1.0, stand_mps=0.01, stand_tau_s=60.0,
                    walk_tau_s=15.0, heading_sd_mps=0.3)


def test_edges_keep_the_cuts_and_are_at_most_a_cell_apart() -> None:
    assert {0.0, 4.0, 4.12, 20.0} <= {round(float(e), 6) for e in EDGES}
    assert float(np.diff(EDGES).max()) <= 1.0 + 1e-9


@pytest.mark.parametrize("sd", [0.3, 2.0, 8.0])
def test_no_mass_leaks_at_the_walls(sd: float) -> None:
    k = axis(CENTRES, WIDTHS, sd)
    assert np.allclose(k.sum(axis=0), 1.0, atol=1e-5)


def test_a_standing_shopper_does_not_spread_and_the_modes_switch_at_their_rates() -> None:
    sky, skx, _wky, _wkx, to_walk, to_stand = MOTION.spread(2.0)
    assert sky is None and skx is None
    assert to_walk == pytest.approx(1 - np.exp(-2 / 60)) and to_stand == pytest.approx(1 - np.exp(-2 / 15))


def test_the_walking_mass_goes_on_along_its_heading() -> None:
    # mass at one cell near x = 8 m, walking +1 m/s in x for 2 s: its heading share lands ~2 m on
    p = np.zeros((len(CENTRES), len(CENTRES)), dtype=np.float32)
    src = int(np.argmin(abs(CENTRES - 8.0)))
    p[src, src] = 1.0
    ky, kx = MOTION.walking_kernels(1.0, 0.0, 0.8, 2.0)
    moved = ((ky @ p) @ kx).sum(axis=0)
    assert float(moved.sum()) == pytest.approx(1.0, abs=1e-5)
    mean_x = float((moved.sum(axis=0) * CENTRES).sum())
    mean_y = float((moved.sum(axis=1) * CENTRES).sum())
    assert mean_x - CENTRES[src] == pytest.approx(0.8 * 2.0, abs=0.15)  # the heading's share moved 2 m
    assert mean_y == pytest.approx(CENTRES[src], abs=0.05)
