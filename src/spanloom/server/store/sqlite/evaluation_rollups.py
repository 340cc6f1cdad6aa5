"""Writing evaluation results and keeping the per-session and per-user aggregates right.

Invariant: a session's (user's) aggregate for a name covers exactly the stored results whose
trace belongs to that session (user) now. Sessions and users are keyed by (project, id), and a
trace's project never changes, so a result only ever counts inside its trace's project. Two
things change the aggregates, both inside the writer's transaction, after the span rollups of
rollups.py:

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
from collections.abc import Callable, Sequence
from typing import NamedTuple

from spanloom.server.store.evaluation_types import (
    EvaluationInput,
    EvaluationInsertResult,
    EvaluationRejection,
    evaluation_passed,
)
from spanloom.server.store.sqlite import evaluation_writes as sql
from spanloom.server.store.sqlite.evaluation_writes import (
    EvaluationRow,
    SessionAggregateRow,
    TraceOwner,
    UserAggregateRow,
)
from spanloom.server.store.trace_rollup import saturated

# (project, user, name) -> [count, scored, score_micros, passed]
_UserDeltas = dict[tuple[str, str, str], list[int]]


class Move(NamedTuple):
    """A trace whose session or user changed in this transaction."""

    project: str
    old_session_id: str | None
    old_user_id: str | None
    new_session_id: str | None
    new_user_id: str | None


def micros(score: float | None) -> int:
    return round(score * 1_000_000) if score is not None else 0


def _contribution(row: EvaluationRow) -> tuple[int, int, int, int]:
    return 1, int(row.score is not None), micros(row.score), int(row.passed)


def _add(deltas: _UserDeltas, key: tuple[str, str, str], counts: tuple[int, ...], sign: int) -> None:
    delta = deltas.setdefault(key, [0, 0, 0, 0])
    for index, value in enumerate(counts):
        delta[index] += sign * value


def resolve(
    connection: sqlite3.Connection, items: Sequence[EvaluationInput], projects: frozenset[str] | None = None
) -> tuple[list[EvaluationRow], list[EvaluationRejection]]:
    """Rows for the items whose span is stored in one of `projects` (None: any), and why the
    others are not. A span in another project is answered exactly as one that is not stored."""

    def visible(project: str) -> bool:
        return projects is None or project in projects

    rejected: list[EvaluationRejection] = []
    by_span_id: dict[str, list[str]] = {}
    lone_span_ids = {item.span_id for item in items if item.span_id and not item.trace_id}
    if lone_span_ids:
        for lone_span_id, lone_trace_id, project in sql.select_traces_of_span_ids(connection, lone_span_ids):
            if visible(project):
                by_span_id.setdefault(lone_span_id, []).append(lone_trace_id)
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
    owners = {
        trace_id: owner
        for trace_id, owner in sql.select_trace_owners(connection, {key[2] for key in keyed}).items()
        if visible(owner.project)
    }
    wanted = {(trace_id, span_id) for _, _, trace_id, span_id in keyed if span_id and trace_id in owners}
    stored = sql.select_stored_spans(connection, wanted) if wanted else set()
    now = time.time_ns()
    rows = []
    for index, item, trace_id, span_id in keyed:
        owner = owners.get(trace_id)
        if span_id is None:
            root = owner.root_span_id if owner else None
            if root is None:
                reason = "its root span has not arrived" if owner else f"no trace {trace_id!r} is stored"
                rejected.append(EvaluationRejection(index, reason))
                continue
            span_id = root
        elif owner is None or (trace_id, span_id) not in stored:
            rejected.append(
                EvaluationRejection(index, f"no span {span_id!r} in trace {trace_id!r} is stored")
            )
            continue
        if not item.name or (item.score is None and item.label is None):
            rejected.append(EvaluationRejection(index, "a result needs a name and a score or a label"))
            continue
        assert owner is not None  # a span id came from the owner, or the span is stored
        rows.append(
            EvaluationRow(
                trace_id=trace_id,
                span_id=span_id,
                name=item.name,
                source=item.source,
                project=owner.project,
                score=item.score,
                label=item.label,
                passed=int(evaluation_passed(item.score, item.label)),
                time_ns=item.time_ns or now,
                explanation=item.explanation,
            )
        )
    rejected.sort(key=lambda rejection: rejection.index)
    return rows, rejected


def insert_evaluations(
    connection: sqlite3.Connection, items: Sequence[EvaluationInput], projects: frozenset[str] | None = None
) -> EvaluationInsertResult:
    """Resolve, write and roll up; the caller owns the transaction."""
    rows, rejected = resolve(connection, items, projects)
    write_rows(connection, rows)
    return EvaluationInsertResult(accepted=len(rows), rejected=rejected)


def write_rows(connection: sqlite3.Connection, rows: Sequence[EvaluationRow]) -> None:
    """Upsert result rows of stored spans and update the aggregates."""
    if not rows:
        return
    latest = {row.key: row for row in rows}  # the same key twice in one call: the last one wins
    trace_ids = {row.trace_id for row in latest.values()}
    old = {row.key: row for row in sql.select_evaluations_of_traces(connection, trace_ids)}
    # A retried export carries the same results again: nothing to rewrite or recount.
    changed = [row for key, row in latest.items() if old.get(key) != row]
    if not changed:
        return
    owners = sql.select_trace_owners(connection, trace_ids)
    deltas: _UserDeltas = {}
    sessions: set[tuple[str, str]] = set()
    for row in changed:
        owner = owners.get(row.trace_id, TraceOwner(row.project, None, None, None))
        if owner.session_id:
            sessions.add((owner.project, owner.session_id))
        if owner.user_id:
            key = (owner.project, owner.user_id, row.name)
            previous = old.get(row.key)
            if previous is not None:
                _add(deltas, key, _contribution(previous), -1)
            _add(deltas, key, _contribution(row), +1)
    sql.upsert_evaluations(connection, changed)
    for project, session_id in sorted(sessions):
        recount_session(connection, project, session_id)
    apply_user_deltas(connection, deltas)


def move_traces(connection: sqlite3.Connection, moves: dict[str, Move]) -> None:
    """Carry results along with traces that changed session or user in this transaction."""
    if not moves:
        return
    results = sql.select_evaluations_of_traces(connection, moves)
    if not results:
        return
    deltas: _UserDeltas = {}
    sessions: set[tuple[str, str]] = set()
    for row in results:
        move = moves[row.trace_id]
        sessions.update(
            (move.project, session) for session in (move.old_session_id, move.new_session_id) if session
        )
        if move.old_user_id != move.new_user_id:
            if move.old_user_id:
                _add(deltas, (move.project, move.old_user_id, row.name), _contribution(row), -1)
            if move.new_user_id:
                _add(deltas, (move.project, move.new_user_id, row.name), _contribution(row), +1)
    for project, session_id in sorted(sessions):
        recount_session(connection, project, session_id)
    apply_user_deltas(connection, deltas)


def recount_session(connection: sqlite3.Connection, project: str, session_id: str) -> None:
    by_name: dict[str, list] = {}  # [count, scored, micros, passed, worst rank]
    for trace_id, span_id, name, score, passed in sql.select_session_results(connection, project, session_id):
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
        SessionAggregateRow(
            name,
            count,
            scored,
            saturated(total),
            passed,
            total / 1e6 / scored if scored else None,
            worst[3],
            worst[4],
        )
        for name, (count, scored, total, passed, worst) in sorted(by_name.items())
    ]
    sql.replace_session_aggregates(connection, project, session_id, rows)


def apply_user_deltas(connection: sqlite3.Connection, deltas: _UserDeltas) -> None:
    deltas = {key: delta for key, delta in deltas.items() if any(delta)}
    if not deltas:
        return
    current: dict[tuple[str, str, str], list[int]] = {}
    by_project: dict[str, set[str]] = {}
    for project, user_id, _ in deltas:
        by_project.setdefault(project, set()).add(user_id)
    for project, user_ids in by_project.items():
        for row in sql.select_user_aggregates(connection, project, user_ids):
            current[(row.project, row.user_id, row.name)] = [
                row.result_count,
                row.scored,
                row.score_micros,
                row.passed,
            ]
    upserts, deletes = [], []
    for key, delta in deltas.items():
        count, scored, total, passed = (
            a + b for a, b in zip(current.get(key, [0, 0, 0, 0]), delta, strict=True)
        )
        if count <= 0:
            deletes.append(key)
        else:
            upserts.append(
                UserAggregateRow(
                    *key, count, scored, saturated(total), passed, total / 1e6 / scored if scored else None
                )
            )
    sql.delete_user_aggregates(connection, deletes)
    sql.upsert_user_aggregates(connection, upserts)


def recount_user(connection: sqlite3.Connection, project: str, user_id: str) -> None:
    """The user's aggregates recounted from the results on their traces (after traces went)."""
    sql.delete_user_aggregates_of(connection, project, user_id)
    deltas: _UserDeltas = {}
    for name, score, passed in sql.select_results_of_user(connection, project, user_id):
        _add(deltas, (project, user_id, name), (1, int(score is not None), micros(score), int(passed)), +1)
    apply_user_deltas(connection, deltas)


def rebuild(connection: sqlite3.Connection, progress: Callable[[int, int], None] | None = None) -> None:
    """Every aggregate recounted from the stored results (the migration)."""
    sql.clear_aggregates(connection)
    sessions = sql.select_evaluated_session_keys(connection)
    for done, (project, session_id) in enumerate(sessions, start=1):
        recount_session(connection, project, session_id)
        if progress is not None and done % 1000 == 0:
            progress(done, len(sessions))
    deltas: _UserDeltas = {}
    for project, user_id, name, score, passed in sql.select_user_results(connection):
        _add(deltas, (project, user_id, name), (1, int(score is not None), micros(score), int(passed)), +1)
    apply_user_deltas(connection, deltas)
