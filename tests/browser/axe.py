"""axe-core in the browser tests: injected from the copy tests/run.sh installed (npm, locked in
tests/browser/package-lock.json), never fetched while the tests run."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
# Every rule of WCAG 2.0-2.2 A and AA, plus axe's best practices (landmarks, headings, regions).
RUN_OPTIONS = {"resultTypes": ["violations"],
               "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa",
                                                     "best-practice"]}}
RUN_JS = "async (options) => await window.axe.run(document, options)"


@cache
def axe_source() -> str:
    if not AXE_JS.is_file():
        pytest.fail(f"{AXE_JS} is missing: run tests/run.sh (it installs axe-core with npm ci --prefix tests/browser)")
    return AXE_JS.read_text(encoding="utf-8")


def blocking(results: dict[str, Any]) -> list[str]:
    """The serious and critical violations, one readable line per failing element."""
    lines = []
    for v in results["violations"]:
        if v["impact"] in BLOCKING:
            for node in v["nodes"]:
                lines.append(f"{v['impact']} {v['id']}: {v['help']} at {node['target']} ({node['failureSummary']})")
    return lines


def check(page: Any) -> list[str]:
    """Run axe-core on a Playwright (sync) page; returns the blocking violations."""
    page.add_script_tag(content=axe_source())
    return blocking(page.evaluate(RUN_JS, RUN_OPTIONS))


async def check_async(page: Any) -> list[str]:
    """:func:`check` for a Playwright async page."""
    await page.add_script_tag(content=axe_source())
    return blocking(await page.evaluate(RUN_JS, RUN_OPTIONS))
