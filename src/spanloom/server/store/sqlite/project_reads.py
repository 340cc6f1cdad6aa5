"""SQL of the read path for projects: their figures."""

from __future__ import annotations

import sqlite3

from spanloom.server.store.base import ProjectSummary


def list_projects(connection: sqlite3.Connection) -> list[ProjectSummary]:
    """From the rollup the writer keeps: no span or trace is read."""
    rows = connection.execute(
        "SELECT project, span_count, trace_count, session_count, user_count, first_ns, last_ns"
        " FROM projects ORDER BY project"
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
