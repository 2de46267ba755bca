"""Chain analytics: Flink batch time on generated chains of 20 and 200 stores, DuckDB on the same files
beside it, and what shipping costs ingest.

Method (chain): ``generate --stores N`` (7 days x ~1,000 visits per store and day, the generator's
sizes vary 0.4-1.6x) into a temporary chain directory through the real shipper; then
``floorwalker-chain batch`` as a child process (JVM start included: that is what a user waits for)
and DuckDB's own computation of the same daily figures over the same files. The figures must
agree: ``chain.duckdb_agrees_N`` is 1 when every per-store and chain-wide row of both is equal.
CHAIN_STORES (default "20,200"), CHAIN_DAYS (7) and CHAIN_VISITS (1000) change the sizes. Every chain
is generated (``chain.generate_s_N``: the generator writes the shipping layout directly, in parallel);
CHAIN_REPLICATE=1 instead copies the first chain with fresh ids (``_replicate``), as before the
generator was fast.

Method (shipping cost): bench_ingest's drain, run alternately with shipping off and on (the store
file's [chain] table, interval 1 s so batches are written during the drain), same backlog size,
CHAIN_INGEST_ROUNDS pairs (default 3: off, on, off, on, off, on; INGEST_MESSAGES per run);
``chain.shipping_ingest_drop_pct`` compares the medians. The rates swing 2-3x on a shared machine, so
the CPU per ingested message (on vs off) and the shipper's CPU per visit against ingest's
(``chain.shipping_cpu_share_pct``) are printed beside them: those the machine's load moves far less.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from agent.config import ChainShipping, MqttSettings, load_store  # noqa: E402
from aggregator.chain.generate import generate_chain, store_ids  # noqa: E402
from aggregator.chain.layout import chain_id  # noqa: E402
from aggregator.embedded_broker import start_mosquitto  # noqa: E402
from tests.benchmarks import bench_ingest  # noqa: E402
from tests.benchmarks.figures import Figure  # noqa: E402
from tests.conftest import CONFIG_DIR, REPO  # noqa: E402

KEY = "bench-chain-key-0123456789"
FIELDS = ("visitors", "new_visitors", "returning_visitors", "occasional_visitors", "busiest_hour",
          "busiest_hour_visitors", "passersby", "visits")

DUCKDB_DAILY = """
WITH zv AS (SELECT * FROM read_json('{chain}/zone_visits/*/*/*/*.jsonl', format='newline_delimited',
                                    hive_partitioning=false)),
     v AS (SELECT * FROM read_json('{chain}/visits/*/*/*/*.jsonl', format='newline_delimited',
                                   hive_partitioning=false)),
     seen AS (SELECT DISTINCT store AS scope, person, "date", "hour" FROM zv
              UNION SELECT DISTINCT '*', person, "date", "hour" FROM zv),
     days AS (SELECT DISTINCT scope, person, "date" FROM seen),
     classed AS (SELECT scope, "date", date_diff('day', CAST(LAG("date") OVER w AS DATE), CAST("date" AS DATE)) AS gap
                 FROM days WINDOW w AS (PARTITION BY scope, person ORDER BY "date")),
     loyalty AS (SELECT scope, "date", COUNT(*) AS visitors, COUNT(*) FILTER (WHERE gap IS NULL) AS new_visitors,
                        COUNT(*) FILTER (WHERE gap <= 7) AS returning_visitors,
                        COUNT(*) FILTER (WHERE gap > 7) AS occasional_visitors FROM classed GROUP BY ALL),
     hours AS (SELECT scope, "date", "hour", COUNT(*) AS n FROM seen GROUP BY ALL),
     busiest AS (SELECT scope, "date", arg_max("hour", n * 100 - "hour") AS busiest_hour,
                        max(n) AS busiest_hour_visitors FROM hours GROUP BY ALL),
     sv AS (SELECT store AS scope, * EXCLUDE (store) FROM v UNION ALL SELECT '*', * EXCLUDE (store) FROM v),
     counts AS (SELECT scope, "date", COUNT(*) FILTER (WHERE NOT passerby) AS visits FROM sv GROUP BY ALL),
     pass AS (SELECT p.scope, p."date", COUNT(*) AS passersby
              FROM (SELECT DISTINCT scope, person, "date" FROM sv WHERE passerby) p
              ANTI JOIN days d ON d.scope = p.scope AND d.person = p.person AND d."date" = p."date" GROUP BY ALL),
     keys AS (SELECT scope, "date" FROM loyalty UNION SELECT scope, "date" FROM counts
              UNION SELECT scope, "date" FROM pass)
SELECT k.scope, CAST(k."date" AS VARCHAR), COALESCE(l.visitors, 0), COALESCE(l.new_visitors, 0),
       COALESCE(l.returning_visitors, 0), COALESCE(l.occasional_visitors, 0), b.busiest_hour,
       COALESCE(b.busiest_hour_visitors, 0), COALESCE(p.passersby, 0), COALESCE(c.visits, 0)
FROM keys k LEFT JOIN counts c USING (scope, "date") LEFT JOIN loyalty l USING (scope, "date")
LEFT JOIN busiest b USING (scope, "date") LEFT JOIN pass p USING (scope, "date")
"""


def _duckdb_daily(chain: Path) -> tuple[float, dict[tuple[str, str], tuple]]:
    import duckdb

    started, cpu = time.perf_counter(), time.process_time()
    conn = duckdb.connect()
    rows = conn.execute(DUCKDB_DAILY.format(chain=chain)).fetchall()
    conn.close()
    global _DUCKDB_CPU_S
    _DUCKDB_CPU_S = time.process_time() - cpu
    return time.perf_counter() - started, {(r[0], r[1]): tuple(r[2:]) for r in rows}


_DUCKDB_CPU_S = 0.0


def _flink_daily(chain: Path, out: Path) -> tuple[float, dict[tuple[str, str], tuple]]:
    import orjson

    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aggregator.chain.cli", "--log-level", "WARNING", "batch",
                    "--chain-dir", str(chain), "--out", str(out)], check=True, cwd=REPO, capture_output=True)
    seconds = time.perf_counter() - started
    rows = {}
    for p in (out / "daily").iterdir():
        if not p.name.startswith((".", "_")):
            for line in p.read_bytes().splitlines():
                r = orjson.loads(line)
                rows[(r["store"], r["date"])] = tuple(r[k] for k in FIELDS)
    return seconds, rows


def _count_rows(chain: Path) -> int:
    return sum(sum(1 for _ in p.open("rb")) for p in chain.rglob("part-*.jsonl"))


def _replicate(base: Path, base_stores: int, chain: Path, stores: int) -> None:
    """``stores`` stores from the ``base_stores`` generated ones: copy k of a store gets a new store id
    and new ids for its anonymous people and visits (loyalty customers stay the same people, as in
    generated chains). Row for row what the generator would ship, at a fraction of its time: it writes
    every sighting to SQLite first (30 s a store on this machine under load, 100 min for 200)."""
    import orjson

    customers = {chain_id(KEY.encode(), str(i)) for i in range(1, 47)}
    ids = store_ids(stores)
    for k, new_store in enumerate(ids):
        old_store = ids[k % base_stores]
        suffix = f"/{k // base_stores}" if k >= base_stores else ""
        for path in base.rglob(f"store={old_store}/**/part-*.jsonl"):
            out = chain / path.relative_to(base).as_posix().replace(f"store={old_store}/", f"store={new_store}/")
            out.parent.mkdir(parents=True, exist_ok=True)
            lines = []
            for line in path.read_bytes().splitlines():
                row = orjson.loads(line)
                row["store"] = new_store
                if suffix:
                    row["visit"] = chain_id(KEY.encode(), row["visit"] + suffix)
                    if row["person"] not in customers:
                        row["person"] = chain_id(KEY.encode(), row["person"] + suffix)
                lines.append(orjson.dumps(row))
            out.write_bytes(b"\n".join(lines) + b"\n")


def _chain_figures(stores: int, days: int, visits: int, workdir: Path, base: tuple[Path, int] | None
                   ) -> Iterator[Figure]:
    chain = workdir / f"chain-{stores}"
    store = load_store(CONFIG_DIR / "store.toml")
    started = time.perf_counter()
    if base is None:
        # A fixed last day: "yesterday" changes at the store's midnight, which a long run may cross.
        generate_chain(chain, store=store, stores=stores, days=days, visits_per_day=visits, seed=3,
                       end_day=date(2026, 3, 10), chain_key=KEY, customer_ids=[str(i) for i in range(1, 47)])
        how = "generated and shipped"
    else:
        _replicate(base[0], base[1], chain, stores)
        how = f"replicated from the {base[1]} generated stores (ids re-keyed per copy)"
    generate_s = time.perf_counter() - started
    n_visits = sum(1 for p in (chain / "visits").rglob("part-*.jsonl") for _ in p.open("rb"))
    rows = _count_rows(chain)
    size_mb = sum(p.stat().st_size for p in chain.rglob("*.jsonl")) / 1e6
    flink_s, flink = _flink_daily(chain, workdir / f"out-{stores}")
    duck_s, duck = _duckdb_daily(chain)
    note = (f"{stores} stores x {days} days: {n_visits} visits, {rows} rows ({size_mb:.0f} MB JSON); "
            f"{how} in {generate_s:.0f} s")
    yield Figure(f"chain.generate_s_{stores}", round(generate_s, 1), "s", note=note)
    yield Figure(f"chain.flink_batch_s_{stores}", round(flink_s, 1), "s", note=note + "; Flink local, parallelism 1")
    yield Figure(f"chain.rows_per_s_{stores}", round(rows / flink_s), "rows/s", note="shipped rows / Flink batch time")
    yield Figure(f"chain.duckdb_s_{stores}", round(duck_s, 2), "s",
                 note=f"the same daily figures in DuckDB, one process ({_DUCKDB_CPU_S:.1f} s of CPU)")
    yield Figure(f"chain.duckdb_agrees_{stores}", int(flink == duck), "", "== 1",
                 note=f"{len(flink)} (store, day) rows from Flink, {len(duck)} from DuckDB")


def _ingest_rate(n: int, ship: bool, workdir: Path) -> tuple[float, float]:
    """(messages/s, CPU µs per message of the aggregator's processes: main with the shipper's thread,
    the SQLite writer and the MQTT link) for one drain of ``n`` queued messages."""
    from aggregator.settings import Settings

    config = workdir / f"config-{time.monotonic_ns()}"
    shutil.copytree(CONFIG_DIR, config)
    if ship:
        text = (config / "store.toml").read_text().replace("ship = false", "ship = true")
        text = text.replace('directory = "/mnt/floorwalker-chain"', f'directory = "{workdir / "shipped"}"')
        (config / "store.toml").write_text(text.replace("interval_s = 60 ", "interval_s = 1"))
    traffic = bench_ingest._traffic(n)
    broker = start_mosquitto(workdir=config / "broker")
    try:
        db = config / "bench.db"
        settings = replace(Settings(), config_dir=config, db_path=db,
                           mqtt=MqttSettings(host=broker.host, port=broker.port), client_id="bench-aggregator",
                           retention_days=0)
        bench_ingest._session(broker.host, broker.port, settings.client_id)
        bench_ingest._queue(broker.host, broker.port, traffic)
        elapsed, measured = asyncio.run(bench_ingest._ingest(settings, len(traffic)))
        cpu_s = sum(c or 0.0 for c in measured[2:5])
        return len(traffic) / elapsed, cpu_s / len(traffic) * 1e6
    finally:
        broker.stop()


_SHIP_CPU_US_PER_VISIT = 0.0
MSGS_PER_VISIT = 4 * 12  # bench_ingest's traffic: 4 agents x (enter + 10 moves + exit) per shopper


def _ship_cost_figures(workdir: Path) -> Iterator[Figure]:
    """The shipper's own CPU per visit on a generated week (a figure the machine's load does not move)."""
    from aggregator.analytics.generator import generate
    from aggregator.analytics.schema import connect, ensure_core_tables
    from aggregator.shipping import ChainShipper

    store = load_store(CONFIG_DIR / "store.toml")
    db = workdir / "ship-cost.db"
    conn = connect(db)
    ensure_core_tables(conn)
    generate(conn, plan=store.plan, entrance=store.entrance, timezone=store.timezone, days=7, visits_per_day=1000,
             seed=4, end_day=date(2026, 3, 10))
    conn.close()
    shipper = ChainShipper(db, "cost", store.timezone, ChainShipping(workdir / "ship-cost", KEY))
    cpu, wall = time.process_time(), time.perf_counter()
    shipper.ship_once()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    shipper.close()
    n = shipper.stats.visits
    global _SHIP_CPU_US_PER_VISIT
    _SHIP_CPU_US_PER_VISIT = cpu / n * 1e6
    yield Figure("chain.ship_cpu_us_per_visit", round(cpu / n * 1e6, 1), "µs",
                 note=f"{n} visits, {shipper.stats.zone_visits} zone visits, {shipper.stats.bytes / 1e6:.1f} MB "
                      f"in {shipper.stats.batches} batches; {wall:.1f} s wall (fsyncs included)")


def _shipping_figures(workdir: Path, quick: bool) -> Iterator[Figure]:
    n = int(os.environ.get("INGEST_MESSAGES", 20_000 if quick else 200_000))
    rounds = int(os.environ.get("CHAIN_INGEST_ROUNDS", 3))
    off: list[float] = []
    on: list[float] = []
    cpu_off: list[float] = []
    cpu_on: list[float] = []
    for _ in range(rounds):  # interleaved: the machine's other load hits both alike
        for ship, rates, cpus in ((False, off, cpu_off), (True, on, cpu_on)):
            rate, cpu = _ingest_rate(n, ship, workdir)
            rates.append(rate)
            cpus.append(cpu)
    m_off, m_on = statistics.median(off), statistics.median(on)
    shipped = sum(1 for _ in (workdir / "shipped").rglob("part-*.jsonl"))
    yield Figure("chain.ingest_msgs_per_s_off", round(m_off), "msg/s", note=f"median of {[round(r) for r in off]}")
    yield Figure("chain.ingest_msgs_per_s_on", round(m_on), "msg/s",
                 note=f"median of {[round(r) for r in on]}; {shipped} part files shipped")
    yield Figure("chain.shipping_ingest_drop_pct", round((m_off - m_on) / m_off * 100, 1), "%", "<= 5",
                 note=f"{n} messages per run, {rounds} interleaved off/on pairs; medians")
    # CPU per message moves far less with the machine's load than the rate does: ingest is CPU-bound,
    # so on an idle machine the rate drops by about what the CPU per message grows.
    c_off, c_on = statistics.median(cpu_off), statistics.median(cpu_on)
    yield Figure("chain.ingest_cpu_us_per_msg_off", round(c_off, 1), "µs",
                 note=f"median of {[round(c) for c in cpu_off]} (main process with the shipper, writer, MQTT link)")
    yield Figure("chain.ingest_cpu_us_per_msg_on", round(c_on, 1), "µs", note=f"median of {[round(c) for c in cpu_on]}")
    yield Figure("chain.shipping_ingest_cpu_pct", round((c_on - c_off) / c_off * 100, 1), "%", "<= 5",
                 note="extra CPU per ingested message with shipping on (medians)")
    if _SHIP_CPU_US_PER_VISIT:  # with CHAIN_BENCH=shipcost,shipping: the shipper's CPU against ingest's, per visit
        yield Figure("chain.shipping_cpu_share_pct", round(_SHIP_CPU_US_PER_VISIT / (c_off * MSGS_PER_VISIT) * 100, 1),
                     "%", "<= 5", note=f"shipping a visit ({_SHIP_CPU_US_PER_VISIT:.0f} µs) / ingesting its "
                                       f"{MSGS_PER_VISIT} messages ({c_off:.0f} µs each): the rate drop on a machine "
                                       "with cores to spare is at most this (ingest is CPU-bound)")
    # Each "on" run against the "off" run just before it: the machine's load drifts less within a pair.
    pairs = [(a - b) / a * 100 for a, b in zip(off, on, strict=True)]
    yield Figure("chain.shipping_ingest_drop_pct_paired", round(statistics.median(pairs), 1), "%", "<= 5",
                 note=f"median of the per-pair drops {[round(d, 1) for d in pairs]}")


def run(args) -> Iterator[Figure]:  # type: ignore[no-untyped-def]
    yield Figure("chain.load_average", round(os.getloadavg()[0], 1), "", note="1-min load at the start (2 cores)")
    quick = getattr(args, "quick", False)
    workdir = Path(tempfile.mkdtemp(prefix="fw-bench-chain-"))
    try:
        parts = os.environ.get("CHAIN_BENCH", "shipcost,shipping,flink").split(",")
        if "shipcost" in parts:
            yield from _ship_cost_figures(workdir)
        if "shipping" in parts:
            yield from _shipping_figures(workdir, quick)
        if "flink" in parts:
            sizes = [int(s) for s in os.environ.get("CHAIN_STORES", "2,4" if quick else "20,200").split(",")]
            days = int(os.environ.get("CHAIN_DAYS", 7))
            visits = int(os.environ.get("CHAIN_VISITS", 1000))
            timings: dict[int, float] = {}
            duck_timings: dict[int, float] = {}
            base: tuple[Path, int] | None = None
            for stores in sizes:
                replicate = base is not None and os.environ.get("CHAIN_REPLICATE", "0") == "1"
                for figure in _chain_figures(stores, days, visits, workdir, base if replicate else None):
                    if figure.figure.startswith("chain.flink_batch_s_"):
                        timings[stores] = float(figure.value or 0)
                    if figure.figure.startswith("chain.duckdb_s_"):
                        duck_timings[stores] = float(figure.value or 0)
                    yield figure
                base = base or (workdir / f"chain-{stores}", stores)
            if len(timings) >= 2:
                small, large = min(timings), max(timings)
                yield Figure("chain.flink_growth", round(timings[large] / timings[small], 2), "x",
                             note=f"Flink batch time {large} stores / {small} stores ({large / small:.0f}x the data)")
                yield Figure("chain.duckdb_growth", round(duck_timings[large] / duck_timings[small], 2), "x",
                             note=f"DuckDB time {large} stores / {small} stores")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
