"""The read path for users: the list, one user, and where an id exists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spanloom.server.store.base import ListQuery, Page, UserSummary
from spanloom.server.store.clickhouse import evaluation_reads
from spanloom.server.store.clickhouse.paging import Conditions, ListShape, Params, Sort, eval_sort, like, page
from spanloom.server.store.evaluation_types import FEEDBACK

_COLUMNS = (
    "u.project, u.user_id, u.session_count, u.trace_count, u.total_tokens, u.cost, u.error_count,"
    " u.first_seen_ns, u.last_seen_ns"
)


def _user(row: tuple[Any, ...]) -> UserSummary:
    project, user_id, sessions, traces, tokens, cost, errors, first_seen, last_seen = row
    return UserSummary(
        user_id=user_id,
        project=project,
        session_count=sessions,
        trace_count=traces,
        total_tokens=tokens,
        cost=cost,
        error_count=errors,
        first_seen_ns=first_seen,
        last_seen_ns=last_seen,
    )


USERS = ListShape(
    select=f"SELECT {_COLUMNS} FROM users AS u FINAL",
    sorts={  # the first is the list's default sort
        "last_seen": Sort("u.last_seen_ns", "Int64", "last_seen_ns"),
        "first_seen": Sort("u.first_seen_ns", "Int64", "first_seen_ns"),
        "sessions": Sort("u.session_count", "Int64", "session_count"),
        "traces": Sort("u.trace_count", "Int64", "trace_count"),
        "tokens": Sort("u.total_tokens", "Int64", "total_tokens"),
        "cost": Sort("u.cost", "Float64", "cost"),
        "errors": Sort("u.error_count", "Int64", "error_count"),
        # Failing traces per trace: "worst experience first" whatever a user's volume.
        "error_rate": Sort("(u.error_count / greatest(u.trace_count, 1))", "Float64", "error_rate"),
    },
    key_columns=("u.project", "u.user_id"),
    key_attributes=("project", "user_id"),
    make=_user,
)


def enrich(client: Any) -> Callable[[list[UserSummary]], None]:
    def fill(items: list[UserSummary]) -> None:
        found = evaluation_reads.select_aggregates(
            client, "user_evaluations", "user_id", [(item.project, item.user_id) for item in items]
        )
        for item in items:
            item.evaluations = found.get((item.project, item.user_id), {})

    return fill


def list_users(client: Any, query: ListQuery) -> Page[UserSummary]:
    """Users filtered by project, user, time and text (they have no tags or metadata)."""
    params = Params()
    sorts, join = eval_sort(query, USERS.sorts, "user_evaluations", "user_id", "u", params)
    conditions = Conditions(params)
    conditions.add_set(
        (
            ("u.project = ?", query.project, "String"),
            ("u.user_id = ?", query.user_id, "String"),
            ("u.last_seen_ns >= ?", query.start_ns, "Int64"),
            ("u.first_seen_ns <= ?", query.end_ns, "Int64"),
        )
    )
    conditions.add_common("u", query, labeled=False)
    if query.has_negative_feedback is not None:
        conditions.add(
            ("" if query.has_negative_feedback else "NOT ")
            + "((u.project, u.user_id) IN (SELECT project, user_id FROM user_evaluations FINAL"
            " WHERE name = ? AND passed < result_count))",
            (FEEDBACK, "String"),
        )
    if query.q:
        conditions.add("u.user_id ILIKE ?", (like(query.q), "String"))
    return page(client, USERS, conditions, query, sorts, join, enrich(client))


def select_user(client: Any, project: str, user_id: str) -> UserSummary | None:
    rows = client.query(
        f"{USERS.select} WHERE u.project = {{p:String}} AND u.user_id = {{u:String}}",
        parameters={"p": project, "u": user_id},
    ).result_rows
    if not rows:
        return None
    summary = _user(rows[0])
    enrich(client)([summary])
    return summary


def select_user_projects(client: Any, user_id: str) -> list[str]:
    rows = client.query(
        "SELECT project FROM users FINAL WHERE user_id = {u:String} ORDER BY project",
        parameters={"u": user_id},
    ).result_rows
    return [row[0] for row in rows]
