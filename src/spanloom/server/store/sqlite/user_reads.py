"""SQL of the read path for users: the list, one user, and where an id exists."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from spanloom.server.store.base import ListQuery, Page, UserSummary
from spanloom.server.store.evaluation_types import FEEDBACK
from spanloom.server.store.sqlite import evaluation_reads
from spanloom.server.store.sqlite.list_paging import Conditions, ListShape, Sort, eval_sort, like, page

_COLUMNS = (
    "u.project, u.user_id, u.session_count, u.trace_count, u.total_tokens, u.cost, u.error_count,"
    " u.first_seen_ns, u.last_seen_ns"
)


def _user(row: tuple[Any, ...]) -> UserSummary:
    (
        project,
        user_id,
        session_count,
        trace_count,
        total_tokens,
        cost,
        error_count,
        first_seen_ns,
        last_seen_ns,
    ) = row
    return UserSummary(
        user_id=user_id,
        project=project,
        session_count=session_count,
        trace_count=trace_count,
        total_tokens=total_tokens,
        cost=cost,
        error_count=error_count,
        first_seen_ns=first_seen_ns,
        last_seen_ns=last_seen_ns,
    )


USERS = ListShape(
    select=f"SELECT {_COLUMNS} FROM users u",
    sorts={  # the first is the list's default sort
        "last_seen": Sort("u.last_seen_ns", "last_seen_ns"),
        "first_seen": Sort("u.first_seen_ns", "first_seen_ns"),
        "sessions": Sort("u.session_count", "session_count"),
        "traces": Sort("u.trace_count", "trace_count"),
        "tokens": Sort("u.total_tokens", "total_tokens"),
        "cost": Sort("u.cost", "cost"),
        "errors": Sort("u.error_count", "error_count"),
        # Failing traces per trace: "worst experience first" whatever a user's volume.
        "error_rate": Sort("(u.error_count * 1.0 / MAX(u.trace_count, 1))", "error_rate"),
    },
    key_columns=("u.project", "u.user_id"),
    key_attributes=("project", "user_id"),
    make=_user,
)


def with_evaluations(connection: sqlite3.Connection) -> Callable[[list[UserSummary]], None]:
    """Fills in each user's evaluation aggregates, in one query per project."""

    def enrich(items: list[UserSummary]) -> None:
        found = evaluation_reads.select_user_aggregates(
            connection, [(item.project, item.user_id) for item in items]
        )
        for item in items:
            item.evaluations = found.get((item.project, item.user_id), {})

    return enrich


def list_users(connection: sqlite3.Connection, query: ListQuery) -> Page[UserSummary]:
    """Users filtered by project, user, time and text; they have no tags or metadata of their own
    (the API refuses those filters here)."""
    conditions = Conditions()
    conditions.add_set(
        (
            ("u.project = ?", query.project),
            ("u.user_id = ?", query.user_id),
            ("u.last_seen_ns >= ?", query.start_ns),
            ("u.first_seen_ns <= ?", query.end_ns),
        )
    )
    conditions.add_common("u", query, labeled=False)
    if query.has_negative_feedback is not None:
        conditions.add(
            ("" if query.has_negative_feedback else "NOT ")
            + "EXISTS (SELECT 1 FROM user_evaluations nf WHERE nf.project = u.project"
            " AND nf.user_id = u.user_id AND nf.name = ? AND nf.passed < nf.result_count)",
            FEEDBACK,
        )
    if query.q:
        conditions.add("u.user_id LIKE ? ESCAPE '\\'", like(query.q))
    sorts, join, join_params = eval_sort(
        query, USERS.sorts, "user_evaluations", ("project", "user_id"), USERS.key_columns
    )
    return page(connection, USERS, conditions, query, sorts, join, join_params, with_evaluations(connection))


def select_user(connection: sqlite3.Connection, project: str, user_id: str) -> UserSummary | None:
    row = connection.execute(
        f"{USERS.select} WHERE u.project = ? AND u.user_id = ?", (project, user_id)
    ).fetchone()
    if row is None:
        return None
    summary = _user(row)
    with_evaluations(connection)([summary])
    return summary


def select_user_projects(connection: sqlite3.Connection, user_id: str) -> list[str]:
    """The projects with a user of this id, by name."""
    rows = connection.execute(
        "SELECT project FROM users WHERE user_id = ? ORDER BY project", (user_id,)
    ).fetchall()
    return [row[0] for row in rows]
