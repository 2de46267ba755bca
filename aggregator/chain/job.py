"""Run the chain SQL with PyFlink: the local mini-cluster by default, or submitted with ``flink run``.

PyFlink is imported only here and only when a job runs: the ``chain`` extra is big (about 850 MB
with its jars, and a Java runtime), and nothing else in Floorwalker needs it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from agent.errors import FloorwalkerError
from aggregator.chain import sqlfiles

log = logging.getLogger(__name__)


class FlinkUnavailable(FloorwalkerError, RuntimeError):
    """PyFlink (the ``chain`` extra) or Java is missing."""


@dataclass(frozen=True, slots=True)
class JobResult:
    seconds: float
    statements: int


def _new_table_env(streaming: bool, parallelism: int, timezone: str):  # -> pyflink TableEnvironment
    try:
        from pyflink.table import EnvironmentSettings, TableEnvironment
    except ImportError:
        raise FlinkUnavailable("PyFlink is not installed: pip install 'floorwalker[chain]' (and a Java 17 "
                               "runtime, e.g. Debian's openjdk-17-jre-headless)") from None
    settings = EnvironmentSettings.in_streaming_mode() if streaming else EnvironmentSettings.in_batch_mode()
    t_env = TableEnvironment.create(settings)
    config = t_env.get_config()
    config.set("parallelism.default", str(parallelism))
    # Local days and hours of the stores: streaming windows cut days at this zone's midnight.
    config.set("table.local-time-zone", timezone)
    return t_env


def run_sql(statements: list[str], *, streaming: bool = False, parallelism: int = 1,
            timezone: str = "UTC", wait: bool = True, checkpoint_s: float = 10.0) -> JobResult:
    """Run DDL at once and every INSERT together as one job (a statement set); wait for it to end
    (a streaming job ends only when stopped)."""
    started = time.perf_counter()
    t_env = _new_table_env(streaming, parallelism, timezone)
    if streaming:  # the file sink commits its files at checkpoints: without them nothing is ever written
        t_env.get_config().set("execution.checkpointing.interval", f"{round(checkpoint_s * 1000)}ms")
    inserts = t_env.create_statement_set()
    n_inserts = 0
    for stmt in statements:
        if stmt.lstrip().upper().startswith("INSERT"):
            inserts.add_insert_sql(stmt)
            n_inserts += 1
        else:
            t_env.execute_sql(stmt)
    if n_inserts:
        result = inserts.execute()
        if wait:
            result.wait()
    seconds = time.perf_counter() - started
    log.info("event=chain-job mode=%s statements=%d seconds=%.1f", "stream" if streaming else "batch",
             len(statements), seconds)
    return JobResult(seconds, len(statements))


def batch(chain_dir: Path, out_dir: Path, first_date: str, last_date: str, *, sql_dir: Path = sqlfiles.SQL_DIR,
          parallelism: int = 1, timezone: str = "UTC") -> JobResult:
    """Recompute ``first_date..last_date`` (local days) from every shipped file into ``out_dir``."""
    values = {"CHAIN_DIR": str(chain_dir.resolve()), "OUT_DIR": str(out_dir.resolve()),
              "FIRST_DATE": first_date, "LAST_DATE": last_date}
    return run_sql(sqlfiles.load(sql_dir, values), parallelism=parallelism, timezone=timezone)


def stream(chain_dir: Path, out_dir: Path, *, timezone: str, parallelism: int = 1,
           checkpoint_s: float = 10.0) -> JobResult:
    """Watch the chain directory and update the daily windows as files land; runs until stopped."""
    values = {"CHAIN_DIR": str(chain_dir.resolve()), "OUT_DIR": str(out_dir.resolve()),
              "FIRST_DATE": "0000-01-01", "LAST_DATE": "9999-12-31"}
    paths = [sqlfiles.SQL_DIR / sqlfiles.TABLES, *sorted(sqlfiles.STREAM_DIR.glob("*.sql"))]
    return run_sql(sqlfiles.load_files(paths, values), streaming=True, parallelism=parallelism, timezone=timezone,
                   checkpoint_s=checkpoint_s)
