"""SQL of the write path on `users`: the rows a transaction changes by deltas, and recounts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from spanloom.server.store.json_values import to_json
from spanloom.server.store.sqlite.statements import (
    execute_values,
    fetch_in_one_step,
    saturated_sum,
    upsert_statement,
)


class UserRow(NamedTuple):
    project: str
    user_id: str
    session_count: int
    trace_count: int
    total_tokens: int
    cost: float
    cost_nanos: int
    error_count: int  # traces with a failed span
    first_seen_ns: int
    last_seen_ns: int


_UPSERT_USER = upsert_statement("users", UserRow._fields, key_columns=2)


def select_users(connection: sqlite3.Connection, project: str, user_ids: Sequence[str]) -> list[UserRow]:
    """The stored rows of these users of the project. Their `cost` may come rounded to 15
    digits: the writer recomputes it from the exact `cost_nanos`."""
    rows = fetch_in_one_step(
        connection,
        f"SELECT {', '.join(UserRow._fields)} FROM users"
        " WHERE project = ? AND user_id IN (SELECT value FROM json_each(?))",
        (project, to_json(list(user_ids))),
        len(UserRow._fields),
    )
    return [UserRow._make(row) for row in rows]


def recount_user(connection: sqlite3.Connection, project: str, user_id: str) -> UserRow | None:
    """The user's row recounted from their traces; None when no trace names them."""
    traces, sessions, tokens, nanos, errors, first_seen, last_seen = connection.execute(
        f"SELECT COUNT(*), COUNT(DISTINCT session_id), {saturated_sum('total_tokens')},"
        f" {saturated_sum('cost_nanos')}, COALESCE(SUM(error_count > 0), 0), MIN(start_ns), MAX(end_ns)"
        " FROM traces INDEXED BY traces_by_user WHERE project = ? AND user_id = ?",
        (project, user_id),
    ).fetchone()
    if not traces:
        return None
    return UserRow(
        project, user_id, sessions, traces, tokens, nanos / 1e9, nanos, errors, first_seen, last_seen
    )


def upsert_users(connection: sqlite3.Connection, rows: Iterable[UserRow]) -> None:
    execute_values(connection, _UPSERT_USER[0], len(UserRow._fields), rows, _UPSERT_USER[1])


def delete_user(connection: sqlite3.Connection, project: str, user_id: str) -> None:
    connection.execute("DELETE FROM users WHERE project = ? AND user_id = ?", (project, user_id))


def rebuild_users(connection: sqlite3.Connection) -> None:
    """Every user row recounted from the traces at once (the migration; the writer keeps them by
    deltas). Integer sums, so the rows equal what the deltas give."""
    connection.execute("DELETE FROM users")
    connection.execute(
        f"INSERT INTO users ({', '.join(UserRow._fields)})"
        f" SELECT project, user_id, COUNT(DISTINCT session_id), COUNT(*), {saturated_sum('total_tokens')},"
        f" {saturated_sum('cost_nanos')} / 1e9, {saturated_sum('cost_nanos')}, SUM(error_count > 0),"
        " MIN(start_ns), MAX(end_ns) FROM traces WHERE user_id IS NOT NULL AND user_id <> ''"
        " GROUP BY project, user_id"
    )
