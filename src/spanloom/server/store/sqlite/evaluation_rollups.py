"""Writing evaluation results and keeping the per-session and per-user aggregates right.

Invariant: a session's (user's) aggregate for a name covers exactly the stored results whose
trace belongs to that session (user) now. Two things change that, both inside the writer's
transaction, after the span rollups of rollups.py:

- results are written (new, or replacing the same (trace, span, name, source)): the trace's
  session is recounted (a session has few turns, read through the covering traces_by_session
  index) and its user changes by the delta (new minus replaced);
- a trace with results moves to another session or user (a late root span naming other ids):
  both sessions are recounted and the results move from one user's totals to the other's.

Score sums are integer millionths, so deltas in any order land on the same totals as a recount.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from spanloom.server.store.evaluation_types import (
    EvaluationInput,
    EvaluationInsertResult,
    EvaluationRejection,
    evaluation_passed,
)
from spanloom.server.store.sqlite import evaluation_queries as sql

_C = {name: index for index, name in enumerate(sql.EVALUATION_COLUMNS)}
# (user, name) -> [count, scored, score_micros, passed]
_UserDeltas = dict[tuple[str, str], list[int]]


def micros(score: float | None) -> int:
    return round(score * 1_000_000) if score is not None else 0


def _contribution(row: Sequence[Any]) -> tuple[int, int, int, int]:
    score = row[_C["score"]]
    return 1, int(score is not None), micros(score), int(row[_C["passed"]])


def _add(deltas: _UserDeltas, user_id: str, name: str, counts: tuple[int, ...], sign: int) -> None:
    delta = deltas.setdefault((user_id, name), [0, 0, 0, 0])
    for index, value in enumerate(counts):
        delta[index] += sign * value


def resolve(
    connection: sqlite3.Connection, items: Sequence[EvaluationInput]
) -> tuple[list[tuple[Any, ...]], list[EvaluationRejection]]:
    """Rows (EVALUATION_COLUMNS) for the items whose span is stored, and why the others are not."""
    rejected: list[EvaluationRejection] = []
    by_span_id: dict[str, list[str]] = {}
    lone_span_ids = [item.span_id for item in items if item.span_id and not item.trace_id]
    if lone_span_ids:
        for span_id, trace_id in sql.select_traces_of_span_ids(connection, set(lone_span_ids)):
            by_span_id.setdefault(span_id, []).append(trace_id)
    keyed: list[tuple[int, EvaluationInput, str, str | None]] = []
    for index, item in enumerate(items):
        if item.trace_id:
            keyed.append((index, item, item.trace_id, item.span_id))
        elif item.span_id:
            traces = by_span_id.get(item.span_id, [])
            if len(traces) == 1:
                keyed.append((index, item, traces[0], item.span_id))
            elif traces:
                rejected.append(EvaluationRejection(index, "several traces have this span_id: give trace_id"))
            else:
                rejected.append(EvaluationRejection(index, f"no span {item.span_id!r} is stored"))
        else:
            rejected.append(EvaluationRejection(index, "give span_id or trace_id"))
    trace_ids = {trace_id for _, _, trace_id, _ in keyed}
    owners = sql.select_trace_owners(connection, trace_ids) if trace_ids else {}
    projects = sql.select_span_projects(connection, trace_ids) if trace_ids else {}
    now = time.time_ns()
    rows = []
    for index, item, trace_id, span_id in keyed:
        if span_id is None:
            owner = owners.get(trace_id)
            span_id = owner[2] if owner else None
            if span_id is None:
                reason = "its root span has not arrived" if owner else f"no trace {trace_id!r} is stored"
                rejected.append(EvaluationRejection(index, reason))
                continue
        project = projects.get((trace_id, span_id))
        if project is None:
            rejected.append(
                EvaluationRejection(index, f"no span {span_id!r} in trace {trace_id!r} is stored")
            )
            continue
        if not item.name or (item.score is None and item.label is None):
            rejected.append(EvaluationRejection(index, "a result needs a name and a score or a label"))
            continue
        passed = int(evaluation_passed(item.score, item.label))
        rows.append(
            (
                trace_id,
                span_id,
                item.name,
                item.source,
                project,
                item.score,
                item.label,
                passed,
                item.time_ns or now,
                item.explanation,
            )
        )
    rejected.sort(key=lambda rejection: rejection.index)
    return rows, rejected


def insert_evaluations(
    connection: sqlite3.Connection, items: Sequence[EvaluationInput]
) -> EvaluationInsertResult:
    """Resolve, write and roll up; the caller owns the transaction."""
    rows, rejected = resolve(connection, items)
    write_rows(connection, rows)
    return EvaluationInsertResult(accepted=len(rows), rejected=rejected)


def write_rows(connection: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Upsert result rows (EVALUATION_COLUMNS) of stored spans and update the aggregates."""
    if not rows:
        return
    latest: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in rows:
        latest[row[:4]] = row  # the same key twice in one call: the last one wins
    trace_ids = {row[0] for row in latest.values()}
    old = {row[:4]: row for row in sql.select_evaluations_of_traces(connection, trace_ids)}
    # A retried export carries the same results again: nothing to rewrite or recount.
    changed = [row for key, row in latest.items() if old.get(key) != row]
    if not changed:
        return
    owners = sql.select_trace_owners(connection, trace_ids)
    deltas: _UserDeltas = {}
    sessions: set[str] = set()
    for row in changed:
        session_id, user_id, _ = owners.get(row[0], (None, None, None))
        if session_id:
            sessions.add(session_id)
        if user_id:
            name = row[_C["name"]]
            previous = old.get(row[:4])
            if previous is not None:
                _add(deltas, user_id, name, _contribution(previous), -1)
            _add(deltas, user_id, name, _contribution(row), +1)
    sql.upsert_evaluations(connection, changed)
    for session_id in sessions:
        recount_session(connection, session_id)
    apply_user_deltas(connection, deltas)


def move_traces(connection: sqlite3.Connection, moves: dict[str, tuple[Any, Any, Any, Any]]) -> None:
    """Carry results along with traces that changed session or user in this transaction.

    moves: trace id -> (old session, old user, new session, new user).
    """
    if not moves:
        return
    results = sql.select_evaluations_of_traces(connection, moves)
    if not results:
        return
    deltas: _UserDeltas = {}
    sessions: set[str] = set()
    for row in results:
        old_session, old_user, new_session, new_user = moves[row[0]]
        sessions.update(session for session in (old_session, new_session) if session)
        if old_user != new_user:
            if old_user:
                _add(deltas, old_user, row[_C["name"]], _contribution(row), -1)
            if new_user:
                _add(deltas, new_user, row[_C["name"]], _contribution(row), +1)
    for session_id in sessions:
        recount_session(connection, session_id)
    apply_user_deltas(connection, deltas)


def recount_session(connection: sqlite3.Connection, session_id: str) -> None:
    by_name: dict[str, list[Any]] = {}
    for trace_id, span_id, name, score, passed in sql.select_session_results(connection, session_id):
        entry = by_name.setdefault(name, [0, 0, 0, 0, None])
        entry[0] += 1
        entry[1] += score is not None
        entry[2] += micros(score)
        entry[3] += passed
        # The worst result: failing before passing, then the lowest score (unscored last).
        rank = (passed, score is None, score or 0.0, trace_id, span_id)
        if entry[4] is None or rank < entry[4]:
            entry[4] = rank
    rows = [
        (name, count, scored, total, passed, total / 1e6 / scored if scored else None, worst[3], worst[4])
        for name, (count, scored, total, passed, worst) in sorted(by_name.items())
    ]
    sql.replace_session_rollup(connection, session_id, rows)


def apply_user_deltas(connection: sqlite3.Connection, deltas: _UserDeltas) -> None:
    deltas = {key: delta for key, delta in deltas.items() if any(delta)}
    if not deltas:
        return
    current = {
        (row[0], row[1]): list(row[2:])
        for row in sql.select_user_rollups(connection, {user_id for user_id, _ in deltas})
    }
    upserts, deletes = [], []
    for key, delta in deltas.items():
        count, scored, total, passed = (
            a + b for a, b in zip(current.get(key, [0, 0, 0, 0]), delta, strict=True)
        )
        if count <= 0:
            deletes.append(key)
        else:
            upserts.append((*key, count, scored, total, passed, total / 1e6 / scored if scored else None))
    sql.delete_user_rollups(connection, deletes)
    sql.upsert_user_rollups(connection, upserts)
