"""SQL of the read path for projects: their figures, from the trace rows."""

from __future__ import annotations

import sqlite3

from spanloom.server.store.base import ProjectSummary


def list_projects(connection: sqlite3.Connection) -> list[ProjectSummary]:
    rows = connection.execute(
        "SELECT project, SUM(span_count), COUNT(*), COUNT(DISTINCT session_id), COUNT(DISTINCT user_id),"
        " MIN(start_ns), MAX(end_ns) FROM traces GROUP BY project ORDER BY project"
    ).fetchall()
    return [
        ProjectSummary(
            name=name,
            span_count=spans,
            trace_count=traces,
            session_count=sessions,
            user_count=users,
            first_span_time_ns=first,
            last_span_time_ns=last,
        )
        for name, spans, traces, sessions, users, first, last in rows
    ]
