"""How the write path runs SQL: values encoded as JSON, rows in multi-row statements, many-row
reads in one step.

Few SQLite steps per statement: pysqlite hands the GIL back around every step, that is every row
an ``executemany`` writes and every row a fetch returns, and under ingest another thread
(normalizing the next request) holds it in between, so each handover waits for that thread. A
commit of a few hundred spans spent three quarters of its time in those waits. So rows go in as
multi-row ``VALUES`` statements (`execute_values`) and many-row reads of the rollups come back
as one JSON value (`fetch_in_one_step`).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

try:  # pydantic-core (there with FastAPI's pydantic 2) from 2.14 on
    from pydantic_core import from_json as _fast_json
except ImportError:  # pragma: no cover - an older pydantic-core: the standard library's parser
    _fast_json = json.loads  # type: ignore[assignment]

# One encoder for every value: json.dumps with options builds a new encoder per call, and the
# write path serializes several values of every span. allow_nan=False: NaN and Infinity are not
# JSON, and SQLite's JSON functions (the metadata and tag filters) fail on a row holding them.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def from_json(text: str) -> Any:
    """A value `to_json` stored, read back: what ``json.loads`` returns (big integers stay exact),
    in a quarter of its time. Reads parse several values of every span, holding the GIL ingest
    needs; a 1,000-span page spent a third of its time in ``json.loads``."""
    try:
        return _fast_json(text)
    except ValueError:
        return json.loads(text)  # whatever the fast parser refuses (a lone surrogate escape)


def to_json(value: Any) -> str:
    try:
        return _ENCODER.encode(value)
    except ValueError:
        # A NaN or an infinity somewhere (an OTLP double, a number in a metadata string): stored
        # as the string OTLP/JSON spells it with, so the text stays valid JSON.
        return _ENCODER.encode(_finite(value))


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by its OTLP/JSON name ("NaN", "Infinity")."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[repr(value)]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def parameter_limit(connection: sqlite3.Connection) -> int:
    """Bound parameters one statement may take: the library's own limit where Python can read it
    (3.11+), else SQLite's default for its version (999 before 3.32)."""
    getlimit = getattr(connection, "getlimit", None)
    if getlimit is not None:
        return int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))  # type: ignore[attr-defined]  # Python 3.11+, as getlimit
    return 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


# Rows per statement at most: beyond this the statement's compile cost outweighs the steps saved.
_MAX_ROWS_PER_STATEMENT = 512


@functools.lru_cache(maxsize=256)
def _values_statement(head: str, width: int, rows: int, tail: str) -> str:
    row = f"({', '.join('?' * width)})"
    return f"{head} VALUES {', '.join([row] * rows)}{tail}"


def execute_values(
    connection: sqlite3.Connection, head: str, width: int, rows: Iterable[Sequence[Any]], tail: str = ""
) -> None:
    """``head VALUES (...), (...) tail`` for all `rows`, a few statements in all.

    Row counts per statement are powers of two, so a handful of distinct statements cover every
    batch size and stay in the connection's statement cache.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    most = max(1, min(_MAX_ROWS_PER_STATEMENT, parameter_limit(connection) // width))
    most = 1 << (most.bit_length() - 1)
    done = 0
    while done < len(rows):
        count = min(most, 1 << ((len(rows) - done).bit_length() - 1))
        chunk = rows[done : done + count]
        connection.execute(
            _values_statement(head, width, count, tail), tuple(itertools.chain.from_iterable(chunk))
        )
        done += count


def fetch_in_one_step(
    connection: sqlite3.Connection, select: str, parameters: Sequence[Any], width: int
) -> list[tuple[Any, ...]]:
    """The rows of `select` (of `width` columns), fetched as one JSON array: one step, not one per
    row. For INTEGER and TEXT columns, and REAL ones whose values have at most 15 significant
    digits (SQLite writes reals into JSON with 15), which every caller here reads. Row order is
    not guaranteed."""
    names = ", ".join(f"c{index}" for index in range(width))
    (packed,) = connection.execute(
        f"WITH fetched ({names}) AS ({select}) SELECT json_group_array(json_array({names})) FROM fetched",
        parameters,
    ).fetchone()
    return [tuple(row) for row in json.loads(packed)]


def upsert_statement(table: str, columns: Sequence[str], key_columns: int = 1) -> tuple[str, str]:
    """The head and tail of an INSERT (for `execute_values`) of rows keyed by their first
    `key_columns` columns that updates a row in place if it exists (unlike INSERT OR REPLACE,
    which deletes and reinserts it and so rewrites every index entry)."""
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns[key_columns:])
    return (
        f"INSERT INTO {table} ({', '.join(columns)})",
        f" ON CONFLICT ({', '.join(columns[:key_columns])}) DO UPDATE SET {updates}",
    )


def saturated_sum(column: str) -> str:
    """SQL summing an integer `column` that saturates at the 64-bit limits instead of failing
    the statement with "integer overflow" (SUM's behaviour): TOTAL adds as a float (exact while
    the sum stays below 2**53), and a cast of a float past the limit gives the limit. `column`
    is a fixed name from this package, never input."""
    return f"CAST(TOTAL({column}) AS INTEGER)"


def by_project(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(project, id) keys grouped by project, each group in first-seen order without repeats: the
    statements over many sessions or users take one project and a JSON array of ids, which an
    index on (project, id) serves by seeks (a batch nearly always holds one project)."""
    grouped: dict[str, dict[str, None]] = {}
    for project, identifier in keys:
        grouped.setdefault(project, {})[identifier] = None
    return {project: list(ids) for project, ids in grouped.items()}
