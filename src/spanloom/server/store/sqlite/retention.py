"""Retention: deleting expired sessions (whole) and expired traces without a session, a batch at a
time inside the writer's transaction, and bringing every rollup they touched back to a recount.

A batch is small (a few hundred sessions or traces) so that ingest queued behind it waits
milliseconds, not the length of a whole clean-up. What the deleted traces leave behind is
recounted from what remains: their users (and the users' evaluation aggregates) and their
projects; a session goes with all of its traces, so nothing of it remains to recount.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from spanloom.server.store.base import Retention, RetentionResult
from spanloom.server.store.json_values import to_json
from spanloom.server.store.sqlite import evaluation_rollups, project_writes, search_index, user_writes


def _expired_sessions(
    connection: sqlite3.Connection, retention: Retention, limit: int
) -> list[tuple[str, str]]:
    """(project, session id) of up to `limit` sessions whose last turn ended before their cutoff."""
    found: list[tuple[str, str]] = []
    for project, cutoff in retention.cutoffs.items():
        found += connection.execute(
            "SELECT project, session_id FROM sessions INDEXED BY sessions_by_end"
            " WHERE end_ns < ? AND project = ? LIMIT ?",
            (cutoff, project, limit - len(found)),
        ).fetchall()
        if len(found) >= limit:
            return found
    if retention.default_cutoff is not None:
        found += connection.execute(
            "SELECT project, session_id FROM sessions INDEXED BY sessions_by_end"
            " WHERE end_ns < ? AND project NOT IN (SELECT value FROM json_each(?)) LIMIT ?",
            (retention.default_cutoff, to_json(list(retention.cutoffs)), limit - len(found)),
        ).fetchall()
    return found


def _expired_loose_traces(connection: sqlite3.Connection, retention: Retention, limit: int) -> list[str]:
    """Up to `limit` traces without a session that ended before their project's cutoff."""
    found: list[str] = []
    for project, cutoff in retention.cutoffs.items():
        found += [
            row[0]
            for row in connection.execute(
                "SELECT trace_id FROM traces INDEXED BY traces_without_session"
                " WHERE session_id IS NULL AND end_ns < ? AND project = ? LIMIT ?",
                (cutoff, project, limit - len(found)),
            )
        ]
        if len(found) >= limit:
            return found
    if retention.default_cutoff is not None:
        found += [
            row[0]
            for row in connection.execute(
                "SELECT trace_id FROM traces INDEXED BY traces_without_session WHERE session_id IS NULL"
                " AND end_ns < ? AND project NOT IN (SELECT value FROM json_each(?)) LIMIT ?",
                (retention.default_cutoff, to_json(list(retention.cutoffs)), limit - len(found)),
            )
        ]
    return found


def _traces_of_sessions(connection: sqlite3.Connection, sessions: Iterable[tuple[str, str]]) -> list[str]:
    return [
        row[0]
        for row in connection.execute(
            "SELECT t.trace_id FROM json_each(?) j JOIN traces t INDEXED BY traces_by_session"
            " ON t.project = json_extract(j.value, '$[0]') AND t.session_id = json_extract(j.value, '$[1]')",
            (to_json([list(key) for key in sessions]),),
        )
    ]


def delete_expired(connection: sqlite3.Connection, retention: Retention, limit: int) -> RetentionResult:
    """One batch; the caller owns the transaction."""
    sessions = _expired_sessions(connection, retention, limit)
    loose = _expired_loose_traces(connection, retention, limit)
    trace_ids = [*_traces_of_sessions(connection, sessions), *loose]
    if not trace_ids:
        return RetentionResult()
    ids = to_json(trace_ids)
    owners = connection.execute(
        "SELECT DISTINCT project, user_id FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))",
        (ids,),
    ).fetchall()
    search_index.forget_traces(connection, trace_ids)  # while their spans still hold the texts
    spans = connection.execute(
        "DELETE FROM spans WHERE trace_id IN (SELECT value FROM json_each(?))", (ids,)
    ).rowcount
    connection.execute("DELETE FROM evaluations WHERE trace_id IN (SELECT value FROM json_each(?))", (ids,))
    connection.execute("DELETE FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))", (ids,))
    keys = to_json([list(key) for key in sessions])
    for table in ("sessions", "session_evaluations", "session_results", "session_marks"):
        # Fixed table names from this module.
        connection.execute(
            f"DELETE FROM {table} WHERE (project, session_id) IN"
            " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
            (keys,),
        )
    for project, user_id in owners:
        if not user_id:
            continue
        row = user_writes.recount_user(connection, project, user_id)
        if row is None:
            user_writes.delete_user(connection, project, user_id)
        else:
            user_writes.upsert_users(connection, [row])
        evaluation_rollups.recount_user(connection, project, user_id)
    project_writes.recount(connection, {project for project, _ in owners})
    return RetentionResult(
        sessions=len(sessions),
        traces=len(trace_ids),
        spans=spans,
        more=len(sessions) >= limit or len(loose) >= limit,
    )
