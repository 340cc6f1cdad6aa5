"""SQL of the write path on `projects`: each project's figures, changed by what a transaction
added (deltas), or recounted where rows were deleted (retention) or on upgrade."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

_COLUMNS = "project, span_count, trace_count, session_count, user_count, first_ns, last_ns"
_UPSERT = (
    f"INSERT INTO projects ({_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project) DO UPDATE SET"
    " span_count = span_count + excluded.span_count, trace_count = trace_count + excluded.trace_count,"
    " session_count = session_count + excluded.session_count, user_count = user_count + excluded.user_count,"
    " first_ns = MIN(first_ns, excluded.first_ns), last_ns = MAX(last_ns, excluded.last_ns)"
)


@dataclass(slots=True)
class ProjectDelta:
    """What one transaction changed in a project's figures."""

    spans: int = 0
    traces: int = 0
    sessions: int = 0
    users: int = 0
    first_ns: int | None = None
    last_ns: int | None = None

    def saw(self, start_ns: int, end_ns: int) -> None:
        self.first_ns = start_ns if self.first_ns is None else min(self.first_ns, start_ns)
        self.last_ns = end_ns if self.last_ns is None else max(self.last_ns, end_ns)


def add_deltas(connection: sqlite3.Connection, deltas: dict[str, ProjectDelta]) -> None:
    connection.executemany(
        _UPSERT,
        [
            (project, d.spans, d.traces, d.sessions, d.users, d.first_ns, d.last_ns)
            for project, d in deltas.items()
            if d.first_ns is not None and d.last_ns is not None
        ],
    )


def recount(connection: sqlite3.Connection, projects: Iterable[str]) -> None:
    """These projects' rows recounted from their traces, sessions and users (a project left with
    no trace loses its row)."""
    for project in projects:
        connection.execute("DELETE FROM projects WHERE project = ?", (project,))
        connection.execute(
            f"INSERT INTO projects ({_COLUMNS}) SELECT ?1, SUM(span_count), COUNT(*),"
            " (SELECT COUNT(*) FROM sessions WHERE project = ?1),"
            " (SELECT COUNT(*) FROM users WHERE project = ?1),"
            " MIN(start_ns), MAX(end_ns) FROM traces INDEXED BY traces_by_project WHERE project = ?1"
            " HAVING COUNT(*) > 0",
            (project,),
        )


def rebuild(connection: sqlite3.Connection) -> None:
    """Every project's row recounted (the upgrade to schema 3)."""
    projects = [row[0] for row in connection.execute("SELECT DISTINCT project FROM traces")]
    recount(connection, projects)
