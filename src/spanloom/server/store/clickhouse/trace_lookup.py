"""Finding stored traces by id: `trace_keys` gives a trace's project and session (a few small
granules, whatever the table's size), then `traces` is read by its key prefix."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from spanloom.server.store.clickhouse.rows import STORED_TRACE_COLUMNS, StoredTrace, stored_trace_of

TraceKey = tuple[str, str]  # (project, session id or '')


def select_trace_keys(client: Any, trace_ids: Collection[str]) -> dict[str, TraceKey]:
    """trace id -> (project, session id or '') of those of these traces that are stored."""
    if not trace_ids:
        return {}
    rows = client.query(
        "SELECT trace_id, project, session_id FROM trace_keys FINAL WHERE trace_id IN {ids:Array(String)}",
        parameters={"ids": list(trace_ids)},
    ).result_rows
    return {trace_id: (project, session_id) for trace_id, project, session_id in rows}


def select_stored_traces(client: Any, keys: dict[str, TraceKey]) -> dict[str, StoredTrace]:
    """The stored rows of these traces (trace id -> its key, from select_trace_keys)."""
    if not keys:
        return {}
    rows = client.query(
        f"SELECT {STORED_TRACE_COLUMNS} FROM traces FINAL"
        " WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}"
        " AND trace_id IN {ids:Array(String)}",
        parameters={"keys": sorted(set(keys.values())), "ids": list(keys)},
    ).result_rows
    found = (stored_trace_of(row) for row in rows)
    return {trace.row.trace_id: trace for trace in found if trace.row.trace_id in keys}


def find_traces(client: Any, trace_ids: Iterable[str]) -> dict[str, StoredTrace]:
    """The stored rows of those of these traces that are stored."""
    return select_stored_traces(client, select_trace_keys(client, set(trace_ids)))
