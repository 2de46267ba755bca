"""``floorwalker-aggregator generate --stores N``: N stores of different sizes in the shipping layout,
some people in several stores."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.chain.conftest import read_rows
from tests.conftest import REPO


def test_generate_stores_writes_the_shipping_layout(tmp_path: Path) -> None:
    chain = tmp_path / "chain"
    result = subprocess.run([sys.executable, "-m", "aggregator.cli", "--log-level", "WARNING", "generate",
                             "--stores", "4", "--days", "2", "--visits-per-day", "60", "--end", "2026-03-10",
                             "--chain-dir", str(chain)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    visits = read_rows(chain, "visits")
    assert summary["stores"] == 4 and summary["shipped_visits"] == summary["visits"] == len(visits)
    per_store = Counter(v["store"] for v in visits)
    assert sorted(per_store) == ["store-001", "store-002", "store-003", "store-004"]
    assert len(set(per_store.values())) > 1  # stores of different sizes
    stores_of: dict[str, set[str]] = {}
    for v in visits:
        stores_of.setdefault(v["person"], set()).add(v["store"])
    assert any(len(s) > 1 for s in stores_of.values())  # some people shop in several stores
    assert {p.name.split("=")[0] for p in chain.glob("*/*")} == {"store"}
    assert not (chain / "_stores").exists()  # store databases only with --keep-dbs


def test_direct_generation_ships_what_the_store_database_would(tmp_path: Path, store_config) -> None:  # type: ignore[no-untyped-def]
    """The fast path (rows shaped straight from the generator, stores in parallel) writes byte for byte
    the files the real shipper writes from each store's database (--keep-dbs goes that way)."""
    from datetime import date

    from aggregator.chain.generate import generate_chain
    from tests.chain.conftest import CHAIN_KEY, CUSTOMERS, visible_files

    def run(name: str, **kw: object) -> dict[str, bytes]:
        chain = tmp_path / name
        generate_chain(chain, store=store_config, stores=3, days=2, visits_per_day=80, seed=5,
                       end_day=date(2026, 3, 10), chain_key=CHAIN_KEY, customer_ids=CUSTOMERS, **kw)
        return visible_files(chain)

    through_db = run("db", keep_dbs=True, jobs=1)
    assert through_db and any(k.startswith("zone_visits/") for k in through_db)
    assert run("direct", jobs=1) == through_db
    assert run("parallel", jobs=2) == through_db
