"""The SQL files of ``aggregator/chain/sql``: loading, filling the placeholders, splitting statements.

Only the table file (``00_tables.sql``) has placeholders (``${CHAIN_DIR}`` and the like); the
query files run as they are, here and on a Flink cluster's SQL client (docs/CHAIN.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from agent.errors import FloorwalkerError

SQL_DIR = Path(__file__).with_name("sql")
_PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")


class SqlFileError(FloorwalkerError, ValueError):
    """A SQL file names a placeholder nobody filled."""


def fill(text: str, values: Mapping[str, str], *, where: str = "sql") -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise SqlFileError(f"{where}: placeholder ${{{name}}} has no value (known: {', '.join(sorted(values))})")
        return values[name]
    return _PLACEHOLDER.sub(one, text)


def statements(text: str) -> list[str]:
    """The statements of a file: comments dropped, split on ``;`` at the end of a line."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    out: list[str] = []
    current: list[str] = []
    for line in lines:
        current.append(line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(current).strip().rstrip(";").strip()
            if stmt:
                out.append(stmt)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        out.append(tail)
    return out


TABLES = "00_tables.sql"
STREAM_DIR = SQL_DIR / "stream"


def load(directory: Path, values: Mapping[str, str]) -> list[str]:
    """Every ``*.sql`` of ``directory`` in name order, filled, as statements (batch mode)."""
    return load_files(sorted(directory.glob("*.sql")), values)


def load_files(paths: list[Path], values: Mapping[str, str]) -> list[str]:
    result: list[str] = []
    for path in paths:
        result.extend(statements(fill(path.read_text(encoding="utf-8"), values, where=str(path))))
    return result
