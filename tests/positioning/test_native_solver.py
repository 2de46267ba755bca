"""The compiled solver (agent/positioning/_solver.c) gives the Python solver's results to the last bit.

The aggregator's fusion and the agents run the compiled loop when the install built it; every
positioning figure in docs/POSITIONING.md was measured with the Python one. These tests hold the two
to exact equality (``==`` on floats, not approx) over random geometry, priors, fixed weights and
posterior linearisation, so a figure measured with either is a figure of both.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

import pytest

from agent.errors import BadReading
from agent.positioning import multilateration as m

try:
    from agent.positioning import _solver as native
except ImportError:  # no compiler where the suite was installed: nothing to compare (CI must have one)
    native = None

needs_native = pytest.mark.skipif(native is None and not os.environ.get("CI"),
                                  reason="the compiled solver was not built here")


def _case(rng: random.Random) -> tuple:
    n = rng.choice([3, 4, 4, 4, 5, 6, 8, 16])
    w, h = rng.uniform(5, 60), rng.uniform(5, 40)
    xs = [rng.uniform(-2, w + 2) for _ in range(n)]
    ys = [rng.uniform(-2, h + 2) for _ in range(n)]
    tx, ty = rng.uniform(0, w), rng.uniform(0, h)
    ds = [max(m.MIN_DISTANCE_M, math.hypot(tx - x, ty - y) * math.exp(rng.gauss(0, 0.4)))
          for x, y in zip(xs, ys, strict=True)]
    # relative sigmas as calibrations give them, tiny ones (the 5 % floor), and position-like anchors
    ss = [rng.choice([0.3 * d, 0.01 * d, rng.uniform(0.01, 20.0), 3.0 * d + 0.5]) for d in ds]
    prior = None if rng.random() < 0.4 else (rng.uniform(-5, w + 5), rng.uniform(-5, h + 5), rng.uniform(1e-3, 10))
    weights = None if rng.random() < 0.5 else [rng.choice([1.0, rng.uniform(0.0, 1.0)]) for _ in range(n)]
    lin = None if rng.random() < 0.4 else (rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 5), rng.uniform(0, 5))
    thresholds = rng.choice([(m.LONG_THRESHOLD, m.SHORT_THRESHOLD), (1.0, 2.0)])
    return (xs, ys, ds, ss), (0.0, 0.0, w, h), prior, weights, thresholds, rng.random() < 0.3, lin


@needs_native
def test_the_compiled_loop_equals_the_python_loop_to_the_last_bit() -> None:
    rng = random.Random(20261201)
    for _ in range(20_000):
        cols, bounds, prior, weights, (lt, st), weights_only, lin = _case(rng)
        python = m._robust(cols, bounds, prior, weights, lt, st, False, weights_only, None, lin)
        compiled = native.robust(*cols, bounds, prior, weights, lt, st, weights_only, lin)
        assert compiled == python, (cols, bounds, prior, weights, lt, st, weights_only, lin)


@needs_native
def test_a_track_is_the_same_track_with_either_solver() -> None:
    """The Locator end to end (two solves, the filter) in a process without the compiled loop."""
    script = (
        "import json, math, random\n"
        "from agent.positioning.locator import Locator\n"
        "from agent.positioning import multilateration as m\n"
        "rng = random.Random(7)\n"
        "loc = Locator((0.0, 0.0, 30.0, 20.0))\n"
        "rx = [(0.5, 0.5), (29.5, 0.5), (0.5, 19.5), (29.5, 19.5), (15.0, 10.0)]\n"
        "out = [m.NATIVE]\n"
        "for i in range(400):\n"
        "    x, y = 2 + 0.06 * i, 3 + 0.035 * i\n"
        "    ds = [max(0.1, math.hypot(x - a, y - b) * math.exp(rng.gauss(0, 0.25))) for a, b in rx]\n"
        "    e = loc.update_checked(i * 0.5, ([a for a, _ in rx], [b for _, b in rx], ds, [0.25 * d for d in ds]))\n"
        "    out.append((e.x_m, e.y_m, e.accuracy_m))\n"
        "print(json.dumps(out))\n"
    )
    runs = {}
    for pure in ("", "1"):
        env = {**os.environ, "FLOORWALKER_PURE_PYTHON": pure}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        runs[pure] = json.loads(done.stdout)  # floats round-trip exactly (shortest repr)
    assert runs[""][0] is True and runs["1"][0] is False  # one run each way
    assert len(runs[""]) == 401
    assert runs[""][1:] == runs["1"][1:]


@needs_native
def test_wrong_input_is_an_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="anchors"):
        native.robust([], [], [], [], (0.0, 0.0, 1.0, 1.0), None, None, 0.5, 1.0, False, None)
    with pytest.raises(ValueError, match="ys"):
        native.robust([1.0, 2.0], [1.0], [1.0, 1.0], [0.3, 0.3], (0.0, 0.0, 5.0, 5.0), None, None, 0.5, 1.0, False,
                      None)
    with pytest.raises(TypeError):
        native.robust([1.0], ["x"], [1.0], [0.3], (0.0, 0.0, 5.0, 5.0), None, None, 0.5, 1.0, False, None)
    cols = ([0.0, 5.0, 0.0], [0.0, 0.0, 5.0], [2.0, 3.0, 4.0], [0.5, 0.5, 0.5])
    with pytest.raises(BadReading, match="one per anchor"):  # checked before the compiled loop, as in Python
        m.solve_checked(cols, (0.0, 0.0, 5.0, 5.0), weights=[1.0, 1.0])


def test_the_solver_uses_the_compiled_loop_when_it_was_built() -> None:
    """CI installs with a compiler: a build that silently failed there would leave Python running."""
    if os.environ.get("CI"):
        assert native is not None, "agent.positioning._solver was not built (see pip's output)"
    assert m.NATIVE is (native is not None and not os.environ.get("FLOORWALKER_PURE_PYTHON"))
