"""The Flink SQL job on the committed chain fixture: per store equal to each store's own statistics,
chain-wide equal to an independent computation. Marked slow (one Flink mini-cluster run, about a minute)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import orjson
import pytest

from agent.config import StoreConfig
from aggregator.analytics import queries
from aggregator.analytics.schema import connect
from aggregator.chain.generate import STORES_DIR, generate_chain, store_ids
from tests.chain.conftest import CHAIN_KEY, visible_files
from tests.chain.reference import python_daily, python_zones
from tests.conftest import REPO

FIXTURE = REPO / "tests/fixtures/chain"
# How tests/fixtures/chain was made (docs/CHAIN.md): the same call must give the same files.
FIXTURE_ARGS = {"stores": 3, "days": 3, "visits_per_day": 40, "seed": 7, "end_day": date(2026, 3, 10)}
FIRST, LAST = "2026-03-08", "2026-03-10"
DEMO_KEY = "floorwalker-demo-chain-key"


def _results(out: Path, name: str) -> list[dict]:
    rows: list[dict] = []
    for p in sorted((out / name).iterdir()):
        if not p.name.startswith((".", "_")):
            rows.extend(orjson.loads(line) for line in p.read_bytes().splitlines() if line)
    return rows


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture made again, with each store's database (and its statistics) kept."""
    from agent.config import load_store
    from tests.conftest import CONFIG_DIR

    chain = tmp_path_factory.mktemp("chain")
    store = load_store(CONFIG_DIR / "store.toml")
    customers = [str(c) for c in range(1, 47)]  # customers.json's ids, as the generate command reads them
    generate_chain(chain, store=store, chain_key=DEMO_KEY, customer_ids=customers, keep_dbs=True, **FIXTURE_ARGS)
    return chain


@pytest.fixture(scope="module")
def flink_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("flink-out")
    chain = tmp_path_factory.mktemp("fixture-copy")
    shutil.copytree(FIXTURE, chain, dirs_exist_ok=True)
    # The console script, in its own process (PyFlink starts a JVM and its own Python workers).
    result = subprocess.run([sys.executable, "-m", "aggregator.chain.cli", "batch", "--chain-dir", str(chain),
                             "--out", str(out), "--from", FIRST, "--to", LAST], capture_output=True, text=True,
                            timeout=1200, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert orjson.loads(result.stdout.splitlines()[-1])["to"] == LAST
    return out


def test_the_fixture_is_what_generate_ships(regenerated: Path) -> None:
    assert visible_files(regenerated) == visible_files(FIXTURE)


def test_fixture_is_small() -> None:
    assert sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file()) < 1_000_000


@pytest.mark.slow
@pytest.mark.timeout(1800)  # one Flink mini-cluster run: 1-4 min on a loaded 2-core machine
def test_per_store_figures_equal_each_stores_own_stats(flink_out: Path, regenerated: Path,
                                                       store_config: StoreConfig) -> None:
    daily = {(r["store"], r["date"]): r for r in _results(flink_out, "daily")}
    zones = _results(flink_out, "zones")
    for store in store_ids(FIXTURE_ARGS["stores"]):
        conn = connect(regenerated / STORES_DIR / f"{store}.db")
        try:
            for stats in queries.daily(conn, date.fromisoformat(FIRST), date.fromisoformat(LAST)):
                mine = daily[(store, stats["date"])]
                for key in ("visitors", "new_visitors", "returning_visitors", "occasional_visitors", "busiest_hour",
                            "busiest_hour_visitors", "passersby", "visits"):
                    assert mine[key] == stats[key], (store, stats["date"], key)
                day = date.fromisoformat(stats["date"])
                dwell = [b["visits"] for b in queries.dwell(conn, day)]
                assert [mine[k] for k in ("dwell_lt_5m", "dwell_5_20m", "dwell_20_60m", "dwell_1_6h",
                                          "dwell_6h_plus")] == dwell
                ranked = [(z["zone"], z["visitors"], z["rank"]) for z in queries.zones(conn, day)]
                assert sorted((z["zone"], z["visitors"], z["rank"]) for z in zones
                              if z["store"] == store and z["date"] == stats["date"]) == sorted(ranked)
        finally:
            conn.close()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # one Flink mini-cluster run: 1-4 min on a loaded 2-core machine
def test_chain_figures_equal_an_independent_computation(flink_out: Path) -> None:
    expected = python_daily(FIXTURE, FIRST, LAST)
    got = {(r.pop("store"), r.pop("date")): r for r in _results(flink_out, "daily")}
    assert got == expected
    assert any(k[0] == "*" for k in got)
    chain_visitors = {d: r["visitors"] for (s, d), r in got.items() if s == "*"}
    summed = {d: sum(r["visitors"] for (s, dd), r in got.items() if s != "*" and dd == d) for d in chain_visitors}
    assert all(chain_visitors[d] < summed[d] for d in chain_visitors)  # some people visit several stores
    zones = python_zones(FIXTURE, FIRST, LAST)
    got_zones: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for r in sorted(_results(flink_out, "zones"), key=lambda r: r["rank"]):
        got_zones.setdefault((r["store"], r["date"]), []).append((r["zone"], r["visitors"]))
    assert got_zones == zones
    assert CHAIN_KEY != DEMO_KEY  # the fixture is keyed with the demo key, as `generate --stores` does
