"""``floorwalker-aggregator check --coverage``: which parts of the plan fewer than 3 sniffers hear."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agent.config import load_deployment
from aggregator.coverage import MIN_SNIFFERS, coverage
from tests.conftest import CONFIG_DIR, REPO


def _check(config_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aggregator.cli", "check", "--coverage", "--config-dir",
                           str(config_dir)], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_the_demo_layout_covers_every_zone_with_three_sniffers() -> None:
    report = coverage(load_deployment(CONFIG_DIR))
    assert all(report.covered_pct[z.name] == 100.0 for z in load_deployment(CONFIG_DIR)[0].store.plan.zones)
    assert all(count < MIN_SNIFFERS for _, _, count in report.thin_points_px)
    result = _check(CONFIG_DIR)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["coverage"]["covered_pct"]["Sport"] == 100.0


def test_one_agent_alone_leaves_zones_thin_and_exits_1(config_dir: Path) -> None:
    for name in ("agent-2", "agent-3", "agent-4"):
        (config_dir / "devices" / f"{name}.toml").unlink()
    result = _check(config_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)["coverage"]
    assert report["covered_pct"]["Sport"] < 100.0  # agent-1 hears the entrance and Women's only
    assert report["thin_points"] > 0 and all(p[2] < MIN_SNIFFERS for p in report["thin_points_px"])
