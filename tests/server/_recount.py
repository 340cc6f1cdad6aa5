"""Recount every trace, session and user rollup from the raw `spans` table of a SQLite file, and
compare with the rollup rows the store kept (read-only; works while the server runs, in WAL mode).

Integer aggregates come from SQL over the spans; the ids and the cost follow the store's rules:
a trace's session and user are its root's (else the earliest span naming one), its head is the
root (else the earliest span whose parent is missing), and its cost is the sum of its spans'
costs in (start, span id) order, kept as integer nano-USD (`round(cost * 1e9)`). Sessions and
users add those integer nanos, so their totals are exact.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def open_read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)


def stored_span_keys(db: Path) -> list[tuple[str, str]]:
    """(trace id, span id) of every stored span, duplicates kept (there must be none)."""
    with closing(open_read_only(db)) as connection:
        return connection.execute("SELECT trace_id, span_id FROM spans").fetchall()


@dataclass
class Recount:
    spans: int
    traces: int
    sessions: int
    users: int


def _recount_traces(connection: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    traces: dict[str, dict[str, Any]] = {}
    for trace_id, count, errors, tokens, start, end in connection.execute(
        "SELECT trace_id, COUNT(*), SUM(status_code = 'ERROR'), COALESCE(SUM(total_tokens), 0),"
        " MIN(start_ns), MAX(end_ns) FROM spans GROUP BY trace_id"
    ):
        traces[trace_id] = {
            "span_count": count,
            "error_count": errors,
            "total_tokens": tokens,
            "start_ns": start,
            "end_ns": end,
        }
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for row in connection.execute(
        "SELECT trace_id, span_id, parent_span_id, project, session_id, user_id, cost"
        " FROM spans ORDER BY trace_id, start_ns, span_id"
    ):
        rows.setdefault(row[0], []).append(row[1:])
    for trace_id, spans in rows.items():
        span_ids = {span[0] for span in spans}
        root = next((span for span in spans if span[1] is None), None)
        head = root or next((span for span in spans if span[1] not in span_ids), spans[0])
        ordered = [head, *(span for span in spans if span is not head)]
        cost = 0.0
        for span in spans:
            cost += span[5] or 0.0
        projects = {span[2] for span in spans}
        assert len(projects) == 1, f"trace {trace_id}: spans of several projects {projects}"
        traces[trace_id].update(
            project=head[2],
            session_id=next((span[3] for span in ordered if span[3]), None),
            user_id=next((span[4] for span in ordered if span[4]), None),
            cost_nanos=round(cost * 1e9),
        )
    return traces


def _recount_sessions(traces: dict[str, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    by_session: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for trace_id, trace in traces.items():
        if trace["session_id"]:
            by_session.setdefault((trace["project"], trace["session_id"]), []).append((trace_id, trace))
    sessions = {}
    for key, members in by_session.items():
        members.sort(key=lambda item: (item[1]["start_ns"], item[0]))
        nanos = sum(trace["cost_nanos"] for _, trace in members)
        sessions[key] = {
            "user_id": next((trace["user_id"] for _, trace in members if trace["user_id"]), None),
            "trace_count": len(members),
            "start_ns": min(trace["start_ns"] for _, trace in members),
            "end_ns": max(trace["end_ns"] for _, trace in members),
            "total_tokens": sum(trace["total_tokens"] for _, trace in members),
            "cost_nanos": nanos,
            "cost": nanos / 1e9,
            "error_count": sum(trace["error_count"] > 0 for _, trace in members),
        }
    return sessions


def _recount_users(traces: dict[str, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    by_user: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for trace_id, trace in traces.items():
        if trace["user_id"]:
            by_user.setdefault((trace["project"], trace["user_id"]), []).append((trace_id, trace))
    users = {}
    for key, members in by_user.items():
        members.sort(key=lambda item: (item[1]["start_ns"], item[0]))
        nanos = sum(trace["cost_nanos"] for _, trace in members)
        users[key] = {
            "session_count": len({trace["session_id"] for _, trace in members if trace["session_id"]}),
            "trace_count": len(members),
            "total_tokens": sum(trace["total_tokens"] for _, trace in members),
            "cost_nanos": nanos,
            "cost": nanos / 1e9,
            "error_count": sum(trace["error_count"] > 0 for _, trace in members),
            "first_seen_ns": min(trace["start_ns"] for _, trace in members),
            "last_seen_ns": max(trace["end_ns"] for _, trace in members),
        }
    return users


def _stored(connection: sqlite3.Connection, table: str, key: str, columns: list[str]) -> dict[Any, dict]:
    """Rows by `key`; "project, ID" keys them by (project, id). Table and column names come from
    this module, never from input."""
    width = key.count(",") + 1
    query = f"SELECT {key}, {', '.join(columns)} FROM {table}"
    return {
        (row[0] if width == 1 else row[:width]): dict(zip(columns, row[width:], strict=True))
        for row in connection.execute(query)
    }


def _compare(what: str, stored: dict[str, dict], recounted: dict[str, dict]) -> None:
    assert stored.keys() == recounted.keys(), (
        f"{what}: {len(stored.keys() - recounted.keys())} stored rows have no spans, "
        f"{len(recounted.keys() - stored.keys())} recounted ones have no row"
    )
    wrong = {key: (stored[key], recounted[key]) for key in stored if stored[key] != recounted[key]}
    assert not wrong, (
        f"{what}: {len(wrong)} rollups differ from the recount, e.g. {next(iter(wrong.items()))}"
    )


def assert_rollups_match_recount(db: Path) -> Recount:
    """Every trace, session and user row equals the recount from raw spans; returns the counts."""
    with closing(open_read_only(db)) as connection:
        connection.execute("BEGIN")  # one snapshot for the spans and the rollups
        (spans,) = connection.execute("SELECT COUNT(*) FROM spans").fetchone()
        traces = _recount_traces(connection)
        columns = [*next(iter(traces.values())).keys()] if traces else ["span_count"]
        stored_traces = _stored(connection, "traces", "trace_id", columns)
        # The trace's float cost is the same sum, before rounding to nanos.
        for trace_id, (cost, nanos) in dict(
            (row[0], row[1:]) for row in connection.execute("SELECT trace_id, cost, cost_nanos FROM traces")
        ).items():
            assert nanos == round(cost * 1e9), (trace_id, cost, nanos)
        _compare("traces", stored_traces, traces)
        sessions = _recount_sessions(traces)
        session_columns = [*next(iter(sessions.values())).keys()] if sessions else ["trace_count"]
        _compare(
            "sessions", _stored(connection, "sessions", "project, session_id", session_columns), sessions
        )
        users = _recount_users(traces)
        user_columns = [*next(iter(users.values())).keys()] if users else ["trace_count"]
        _compare("users", _stored(connection, "users", "project, user_id", user_columns), users)
        connection.execute("COMMIT")
    return Recount(spans, len(traces), len(sessions), len(users))
