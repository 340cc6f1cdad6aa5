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
from dataclasses import dataclass, field
from typing import NamedTuple

from spanloom.server.store.evaluation_types import (
    FEEDBACK,
    EvaluationInput,
    EvaluationInsertResult,
    EvaluationRejection,
    evaluation_passed,
)
from spanloom.server.store.json_values import to_json
from spanloom.server.store.sqlite import evaluation_writes as sql
from spanloom.server.store.sqlite.evaluation_writes import (
    EvaluationRow,
    SessionAggregateRow,
    SessionResultRow,
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


@dataclass(slots=True)
class Resolved:
    """What a request's results are, once their targets are looked up."""

    trace_rows: list[EvaluationRow] = field(default_factory=list)
    session_rows: list[SessionResultRow] = field(default_factory=list)
    rejected: list[EvaluationRejection] = field(default_factory=list)
    discarded: int = 0  # accepted in the answer, not written (see resolve)


def _session_target(
    connection: sqlite3.Connection, item: EvaluationInput, visible: Callable[[str], bool]
) -> tuple[str | None, str | None]:
    """(project, None) for a result on a session, or (None, why not)."""
    assert item.session_id is not None
    if item.project is not None:
        if not visible(item.project):
            return None, f"no session {item.session_id!r} is stored"
        return item.project, None
    holders = [
        project for project in sql.select_session_projects(connection, item.session_id) if visible(project)
    ]
    if len(holders) > 1:
        return None, "several projects have this session_id: give project"
    if not holders:
        return None, f"no session {item.session_id!r} is stored"
    return holders[0], None


def resolve(
    connection: sqlite3.Connection, items: Sequence[EvaluationInput], projects: frozenset[str] | None = None
) -> Resolved:
    """Rows for the items whose target is stored in one of `projects` (None: any), and why the
    others are not. A target in another project is answered exactly as one that is not stored.
    Feedback may name a turn or a session before its spans arrive: it is kept, in its project."""

    def visible(project: str) -> bool:
        return projects is None or project in projects

    resolved = Resolved()
    rejected = resolved.rejected
    now = time.time_ns()
    by_span_id: dict[str, list[str]] = {}
    lone_span_ids = {item.span_id for item in items if item.span_id and not item.trace_id}
    if lone_span_ids:
        for lone_span_id, lone_trace_id, project in sql.select_traces_of_span_ids(connection, lone_span_ids):
            if visible(project):
                by_span_id.setdefault(lone_span_id, []).append(lone_trace_id)
    keyed: list[tuple[int, EvaluationInput, str, str | None]] = []
    for index, item in enumerate(items):
        if not item.name or (item.score is None and item.label is None):
            rejected.append(EvaluationRejection(index, "a result needs a name and a score or a label"))
        elif item.trace_id:
            keyed.append((index, item, item.trace_id, item.span_id))
        elif item.span_id:
            traces = by_span_id.get(item.span_id, [])
            if len(traces) == 1:
                keyed.append((index, item, traces[0], item.span_id))
            elif traces:
                rejected.append(EvaluationRejection(index, "several traces have this span_id: give trace_id"))
            else:
                rejected.append(EvaluationRejection(index, f"no span {item.span_id!r} is stored"))
        elif item.session_id:
            session_project, why = _session_target(connection, item, visible)
            if session_project is None:
                rejected.append(EvaluationRejection(index, why or "no such session"))
                continue
            resolved.session_rows.append(
                SessionResultRow(
                    project=session_project,
                    session_id=item.session_id,
                    name=item.name,
                    source=item.source,
                    result_key=item.key,
                    score=item.score,
                    label=item.label,
                    passed=int(evaluation_passed(item.score, item.label, item.source)),
                    time_ns=item.time_ns or now,
                    explanation=item.explanation,
                    details=to_json(item.details) if item.details else "{}",
                )
            )
        else:
            rejected.append(EvaluationRejection(index, "give span_id, trace_id or session_id"))
    stored_owners = sql.select_trace_owners(connection, {key[2] for key in keyed})
    owners = {trace_id: owner for trace_id, owner in stored_owners.items() if visible(owner.project)}
    wanted = {(trace_id, span_id) for _, _, trace_id, span_id in keyed if span_id and trace_id in owners}
    stored = sql.select_stored_spans(connection, wanted) if wanted else set()
    for index, item, trace_id, span_id in keyed:
        owner = owners.get(trace_id)
        target: str | None = owner.project if owner else None
        if item.source == FEEDBACK and span_id is None:
            # Feedback judges the whole turn, and may come before its spans (then in its project).
            span_id = ""
            if owner is None:
                if item.project is None or not visible(item.project):
                    rejected.append(
                        EvaluationRejection(index, f"no trace {trace_id!r} is stored: give project")
                    )
                    continue
                if trace_id in stored_owners:
                    # Another project's trace: answered as feedback kept for a trace yet to come
                    # (the answer to an unknown one), and never written.
                    resolved.discarded += 1
                    continue
                target = item.project
        elif span_id is None:
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
        assert target is not None  # from the owner, or given with pending feedback
        resolved.trace_rows.append(
            EvaluationRow(
                trace_id=trace_id,
                span_id=span_id,
                name=item.name,
                source=item.source,
                result_key=item.key,
                project=target,
                score=item.score,
                label=item.label,
                passed=int(evaluation_passed(item.score, item.label, item.source)),
                time_ns=item.time_ns or now,
                explanation=item.explanation,
                details=to_json(item.details) if item.details else "{}",
            )
        )
    rejected.sort(key=lambda rejection: rejection.index)
    return resolved


def insert_evaluations(
    connection: sqlite3.Connection, items: Sequence[EvaluationInput], projects: frozenset[str] | None = None
) -> tuple[EvaluationInsertResult, set[str]]:
    """Resolve, write and roll up; the caller owns the transaction. Also returns the traces
    that have results (feedback) but no stored span yet."""
    resolved = resolve(connection, items, projects)
    pending = write_rows(connection, resolved.trace_rows)
    write_session_rows(connection, resolved.session_rows)
    accepted = len(resolved.trace_rows) + len(resolved.session_rows) + resolved.discarded
    return EvaluationInsertResult(accepted=accepted, rejected=resolved.rejected), pending


def write_session_rows(connection: sqlite3.Connection, rows: Sequence[SessionResultRow]) -> None:
    """Upsert results on sessions and recount the aggregates of those sessions and their users."""
    if not rows:
        return
    latest = {row.key: row for row in rows}
    keys = {(row.project, row.session_id) for row in latest.values()}
    old = {row.key: row for row in sql.select_session_result_rows(connection, keys)}
    changed = [row for key, row in latest.items() if old.get(key) != row]
    if not changed:
        return
    sql.upsert_session_results(connection, changed)
    recount_sessions_and_users(connection, {(row.project, row.session_id) for row in changed})


def recount_sessions_and_users(connection: sqlite3.Connection, keys: set[tuple[str, str]]) -> None:
    """The aggregates of these sessions (those stored) and of their users, recounted."""
    users = sql.select_session_users(connection, keys)
    for project, session_id in sorted(users):
        recount_session(connection, project, session_id)
    for project, user_id in sorted({(key[0], user) for key, user in users.items() if user}):
        recount_user(connection, project, user_id)


def write_rows(connection: sqlite3.Connection, rows: Sequence[EvaluationRow]) -> set[str]:
    """Upsert result rows and update the aggregates; returns the traces among them that have no
    stored span yet (feedback ahead of its spans: counted when they arrive, `adopt_pending`)."""
    if not rows:
        return set()
    latest = {row.key: row for row in rows}  # the same key twice in one call: the last one wins
    trace_ids = {row.trace_id for row in latest.values()}
    old = {row.key: row for row in sql.select_evaluations_of_traces(connection, trace_ids)}
    # A retried export carries the same results again: nothing to rewrite or recount.
    changed = [row for key, row in latest.items() if old.get(key) != row]
    if not changed:
        return set()
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
    return {row.trace_id for row in changed if row.trace_id not in owners}


def adopt_pending(connection: sqlite3.Connection, arrived: dict[str, Move]) -> None:
    """Results written before their trace's first spans, now that those arrived: a result of
    another project than the trace's is dropped (a project's key never judges another's trace);
    the others count for the trace's session and user like a move from nowhere."""
    results = sql.select_evaluations_of_traces(connection, arrived)
    foreign = [row for row in results if row.project != arrived[row.trace_id].project]
    sql.delete_evaluations(connection, foreign)
    if len(foreign) < len(results):
        move_traces(connection, arrived)


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
        # Results on the session itself come with empty trace and span ids.
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
