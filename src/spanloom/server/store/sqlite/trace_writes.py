"""SQL of the write path on `traces`: the stored rows of a transaction's traces, and their upsert."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from spanloom.server.store.json_values import to_json
from spanloom.server.store.sqlite.statements import execute_values, upsert_statement
from spanloom.server.store.trace_rollup import TRACE_COLUMNS, TraceRow

_UPSERT_TRACE = upsert_statement("traces", (*TRACE_COLUMNS, "input_span_id", "output_span_id"))


def select_trace_rows(connection: sqlite3.Connection, trace_ids: Sequence[str]) -> dict[str, TraceRow]:
    """The stored rows of those of these traces that have one, by trace id."""
    rows = connection.execute(
        f"SELECT {', '.join(TRACE_COLUMNS)} FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))",
        (to_json(list(trace_ids)),),
    ).fetchall()
    return {row[0]: TraceRow._make(row) for row in rows}


def select_trace_projects(connection: sqlite3.Connection, trace_ids: Iterable[str]) -> dict[str, str]:
    """trace id -> project of those of these traces that are stored."""
    rows = connection.execute(
        "SELECT trace_id, project FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))",
        (to_json(list(trace_ids)),),
    ).fetchall()
    return dict(rows)


def upsert_traces(connection: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    """Write trace rows (TRACE_COLUMNS plus input_span_id, output_span_id)."""
    execute_values(connection, _UPSERT_TRACE[0], len(TRACE_COLUMNS) + 2, rows, _UPSERT_TRACE[1])
