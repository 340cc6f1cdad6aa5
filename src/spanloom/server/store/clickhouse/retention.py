"""Retention: deleting expired sessions (whole) and expired traces without a session, a batch at
a time from the writer thread, and recounting the users they leave behind.

Spans and results are deleted with lightweight DELETE (rows masked at once, removed by later
merges); trace, session and aggregate rows get tombstones. Like every batch, a write_log entry
comes first: a batch cut short is recounted from what remains (writer.recover), and a trace whose
spans are gone then goes too.
"""

from __future__ import annotations

from typing import Any

from spanloom.server.store.base import Retention, RetentionResult
from spanloom.server.store.clickhouse import schema
from spanloom.server.store.clickhouse.rows import tombstone

Key = tuple[str, str]


def _per_project(retention: Retention, client: Any) -> list[tuple[str, int]]:
    """(project, cutoff) for every stored project that has one."""
    projects = [row[0] for row in client.query("SELECT DISTINCT project FROM trace_keys").result_rows]
    return [
        (project, cutoff) for project in sorted(projects) if (cutoff := retention.cutoff(project)) is not None
    ]


def expired(client: Any, retention: Retention, limit: int) -> tuple[list[Key], list[tuple[str, str]]]:
    """Up to `limit` expired sessions (project, id), and up to `limit` expired traces without a
    session (project, trace id)."""
    sessions: list[Key] = []
    loose: list[tuple[str, str]] = []
    for project, cutoff in _per_project(retention, client):
        parameters = {"p": project, "cutoff": cutoff}
        if len(sessions) < limit:
            sessions += client.query(
                "SELECT project, session_id FROM sessions FINAL WHERE project = {p:String}"
                " AND end_ns < {cutoff:Int64} LIMIT {n:UInt32}",
                parameters={**parameters, "n": limit - len(sessions)},
            ).result_rows
        if len(loose) < limit:
            loose += client.query(
                "SELECT project, trace_id FROM traces FINAL WHERE project = {p:String} AND session_id = ''"
                " AND end_ns < {cutoff:Int64} LIMIT {n:UInt32}",
                parameters={**parameters, "n": limit - len(loose)},
            ).result_rows
    return [tuple(key) for key in sessions], [tuple(key) for key in loose]  # type: ignore[misc]


def traces_of(
    client: Any, sessions: list[Key], loose: list[tuple[str, str]]
) -> list[tuple[str, str, str, str]]:
    """(project, session id or '', trace id, user id or '') of every trace to delete."""
    found = []
    if sessions:
        found += client.query(
            "SELECT project, session_id, trace_id, user_id FROM traces FINAL"
            " WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}",
            parameters={"keys": sessions},
        ).result_rows
    if loose:
        found += client.query(
            "SELECT project, session_id, trace_id, user_id FROM traces FINAL"
            " WHERE project IN {projects:Array(String)}"
            " AND session_id = '' AND trace_id IN {ids:Array(String)}",
            parameters={"projects": sorted({p for p, _ in loose}), "ids": [t for _, t in loose]},
        ).result_rows
    return [tuple(row) for row in found]


def delete(client: Any, traces: list[tuple[str, str, str, str]], sessions: list[Key], version: int) -> int:
    """Delete these traces (spans, results, rows) and sessions; returns the spans deleted."""
    by_project: dict[str, list[str]] = {}
    for project, _, trace_id, _ in traces:
        by_project.setdefault(project, []).append(trace_id)
    spans = 0
    for project, trace_ids in by_project.items():
        parameters = {"p": project, "ids": trace_ids}
        spans += int(
            client.query(
                "SELECT count() FROM spans WHERE project = {p:String} AND trace_id IN {ids:Array(String)}",
                parameters=parameters,
            ).result_rows[0][0]
        )
        for table in ("spans", "evaluations"):  # fixed names
            client.command(
                f"DELETE FROM {table} WHERE project = {{p:String}} AND trace_id IN {{ids:Array(String)}}",
                parameters=parameters,
            )
    schema.insert(
        client,
        schema.TRACES,
        [
            tombstone(schema.TRACES, {"project": p, "session_id": s, "trace_id": t}, version)
            for p, s, t, _ in traces
        ],
    )
    schema.insert(
        client,
        schema.TRACE_KEYS,
        [
            tombstone(schema.TRACE_KEYS, {"trace_id": t, "project": p, "session_id": s}, version)
            for p, s, t, _ in traces
        ],
    )
    if sessions:
        for table in ("session_results", "session_marks"):  # fixed names
            client.command(
                f"DELETE FROM {table} WHERE (project, session_id) IN {{keys:Array(Tuple(String, String))}}",
                parameters={"keys": sessions},
            )
        schema.insert(
            client,
            schema.SESSIONS,
            [tombstone(schema.SESSIONS, {"project": p, "session_id": s}, version) for p, s in sessions],
        )
        stored = client.query(
            "SELECT project, session_id, name FROM session_evaluations FINAL"
            " WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}",
            parameters={"keys": sessions},
        ).result_rows
        if stored:
            schema.insert(
                client,
                schema.SESSION_EVALUATIONS,
                [
                    tombstone(schema.SESSION_EVALUATIONS, {"project": p, "session_id": s, "name": n}, version)
                    for p, s, n in stored
                ],
            )
    return spans


def result(
    sessions: list[Key], loose: list[tuple[str, str]], traces: int, spans: int, limit: int
) -> RetentionResult:
    return RetentionResult(
        sessions=len(sessions), traces=traces, spans=spans, more=len(sessions) >= limit or len(loose) >= limit
    )
