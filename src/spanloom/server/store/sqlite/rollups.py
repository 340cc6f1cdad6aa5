"""Writing a transaction's spans plus the trace, session and user rollups they change.

Each touched trace is recounted once per transaction from its spans (few), and its row is
rewritten only if it changed. Sessions are recounted from their turns (session_rollups.py).
Users can have any number of traces, so they change by
deltas: each changed trace subtracts its old contribution and adds its new one, in the same
transaction. The rare change a delta cannot express (a trace leaving its user when the root
arrives naming another) recounts that user. Every path ends in the rows a recount from the raw
spans would give, whatever the arrival order: see tests/store_contract/.

A trace's project never changes (ownership.py), so sessions and users, keyed by (project, id),
only ever gain or lose traces of their own project.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from spanloom import semconv
from spanloom.server.store.base import SpanRecord
from spanloom.server.store.evaluation_events import evaluations_of_spans
from spanloom.server.store.sqlite import (
    evaluation_rollups,
    evaluation_writes,
    project_writes,
    search_index,
    session_rollups,
    span_rows,
    span_writes,
    user_writes,
)
from spanloom.server.store.sqlite import trace_writes as traces_sql
from spanloom.server.store.sqlite.project_writes import ProjectDelta
from spanloom.server.store.sqlite.statements import by_project
from spanloom.server.store.sqlite.trace_changes import Key, TraceChange
from spanloom.server.store.sqlite.user_writes import UserRow
from spanloom.server.store.trace_rollup import (
    TraceRow,
    compute_trace,
    facts_of,
    saturated,
)


@dataclass(slots=True)
class Waiting:
    """What the writer remembers between transactions so that the hot path asks nothing when
    nothing waits: traces with results written before their spans, and whether any session has
    results of its own (whose aggregates must follow a session to its user)."""

    traces: set[str] = field(default_factory=set)
    sessions_have_results: bool = False


def write_batch(
    connection: sqlite3.Connection, spans: Sequence[SpanRecord], waiting: Waiting | None = None
) -> set[str]:
    """Insert spans and update every rollup they touch. The caller owns the transaction, and has
    given every span its trace's project (ownership.py). `spans` may come prepared
    (`span_rows.prepare`): their rows and new traces' rollups are then not built here. Returns
    the traces of `waiting` whose results now count (for the caller to forget once committed)."""
    waiting = waiting or Waiting()
    before = connection.total_changes
    span_writes.insert_spans(connection, *span_rows.rows_of(spans))
    _mark_ended(connection, spans)
    if connection.total_changes == before:
        return set()  # every span was already stored (a retried batch): no rollup changes
    by_trace = span_rows.by_trace(spans)
    changes = _write_traces(connection, spans, by_trace)
    deltas = _trace_deltas(changes)
    judged: dict[Key, tuple[bool, str | None]] = {}
    if waiting.sessions_have_results:
        # Sessions with results of their own: their users before this transaction.
        touched = {
            (row.project, row.session_id)
            for change in changes.values()
            for row in (change.old, change.new)
            if row is not None and row.session_id
        }
        keys = evaluation_writes.select_judged_sessions(connection, touched) if touched else set()
        if keys:
            judged = _session_users(connection, keys)
    session_counts = session_rollups.update_sessions(
        connection, changes, deltas, session_rollups.new_turn_texts(by_trace, changes)
    )
    _write_users(connection, changes, session_counts, deltas)
    project_writes.add_deltas(connection, deltas)
    # Evaluation aggregates follow their traces: first carry stored results along with traces that
    # changed session or user (or that had results waiting for them), then add the results this
    # batch's spans carry (as `evaluation` events), so they count once, under the trace's owners
    # as of this commit.
    evaluation_rollups.move_traces(connection, _moves(changes))
    arrived = {
        trace_id: evaluation_rollups.Move(
            change.new.project, None, None, change.new.session_id, change.new.user_id
        )
        for trace_id, change in changes.items()
        if change.old is None and trace_id in waiting.traces
    }
    if arrived:
        evaluation_rollups.adopt_pending(connection, arrived)
    if judged:
        _follow_session_results(connection, judged)
    from_events = evaluations_of_spans(spans)
    if from_events:
        evaluation_rollups.write_rows(
            connection, evaluation_rollups.resolve(connection, from_events).trace_rows
        )
    return set(arrived)


def _mark_ended(connection: sqlite3.Connection, spans: Sequence[SpanRecord]) -> None:
    """A span with ``session.ended`` true ends its session, as of the span's end."""
    marks = [
        (span.project, span.session_id, span.end_time_ns)
        for span in spans
        if span.session_id and span.attributes.get(semconv.SESSION_ENDED) in (True, "true")
    ]
    if marks:
        evaluation_writes.mark_ended(connection, marks)


def _session_users(connection: sqlite3.Connection, keys: set[Key]) -> dict[Key, tuple[bool, str | None]]:
    """(session stored, its user) of each of these sessions."""
    users = evaluation_writes.select_session_users(connection, keys)
    return {key: (key in users, users.get(key)) for key in keys}


def _follow_session_results(
    connection: sqlite3.Connection, before: dict[Key, tuple[bool, str | None]]
) -> None:
    """Sessions with results of their own that appeared, went or changed user in this
    transaction: their aggregates, and their users' before and after, are recounted."""
    after = _session_users(connection, set(before))
    changed = {key for key in before if after[key] != before[key]}
    if not changed:
        return
    evaluation_rollups.recount_sessions_and_users(connection, changed)
    for key in changed:
        previous_user = before[key][1]
        if previous_user and previous_user != after[key][1]:
            evaluation_rollups.recount_user(connection, key[0], previous_user)


def _moves(changes: dict[str, TraceChange]) -> dict[str, evaluation_rollups.Move]:
    return {
        trace_id: evaluation_rollups.Move(
            change.new.project,
            change.old.session_id,
            change.old.user_id,
            change.new.session_id,
            change.new.user_id,
        )
        for trace_id, change in changes.items()
        if change.old is not None
        and (change.old.session_id, change.old.user_id) != (change.new.session_id, change.new.user_id)
    }


def _write_traces(
    connection: sqlite3.Connection,
    spans: Sequence[SpanRecord],
    by_trace: dict[str, dict[str, SpanRecord]],
) -> dict[str, TraceChange]:
    """`by_trace`: `spans` by trace and span id (span_rows.by_trace)."""
    precomputed = getattr(spans, "rollups", None) or {}
    old_rows = traces_sql.select_trace_rows(connection, list(by_trace))
    # A trace with a row had spans before this transaction: recount from all that is stored.
    stored = span_writes.select_span_facts(connection, list(old_rows)) if old_rows else {}
    changes: dict[str, TraceChange] = {}
    for trace_id, records in by_trace.items():
        old = old_rows.get(trace_id)
        if old is None:
            # No row means no stored span (rows are written with their spans): all are here.
            rollup = precomputed.get(trace_id) or compute_trace(trace_id, map(facts_of, records.values()))
        else:
            rollup = compute_trace(trace_id, stored[trace_id])
            if rollup.row == old:
                continue  # nothing new (retried spans)
        changes[trace_id] = TraceChange(old, rollup.row, rollup.input_span_id, rollup.output_span_id)
    # The text index follows the rows off the ingest path: only note what the indexer must do,
    # stored traces that now name other spans (before their rows change) and new traces (after).
    search_index.note_moved_texts(
        connection,
        {
            trace_id: (change.input_span_id, change.output_span_id)
            for trace_id, change in changes.items()
            if change.old is not None
        },
    )
    traces_sql.upsert_traces(
        connection,
        [(*change.new, change.input_span_id, change.output_span_id) for change in changes.values()],
    )
    search_index.note_new_traces(
        connection, [trace_id for trace_id, change in changes.items() if change.old is None]
    )
    return changes


def _trace_deltas(changes: dict[str, TraceChange]) -> dict[str, ProjectDelta]:
    """Each project's new spans and traces, and the times they cover."""
    deltas: dict[str, ProjectDelta] = {}
    for change in changes.values():
        delta = deltas.get(change.new.project)
        if delta is None:
            delta = deltas[change.new.project] = ProjectDelta()
        delta.spans += change.new.span_count - (change.old.span_count if change.old else 0)
        delta.traces += change.old is None
        delta.saw(change.new.start_ns, change.new.end_ns)
    return deltas


@dataclass(slots=True)
class _UserTally:
    """A user's row while this transaction's deltas are added to it."""

    project: str
    user_id: str
    session_count: int = 0
    trace_count: int = 0
    total_tokens: int = 0
    cost_nanos: int = 0
    error_count: int = 0
    first_seen_ns: int | None = None
    last_seen_ns: int | None = None

    @classmethod
    def of(cls, row: UserRow) -> _UserTally:
        return cls(
            row.project,
            row.user_id,
            row.session_count,
            row.trace_count,
            row.total_tokens,
            row.cost_nanos,
            row.error_count,
            row.first_seen_ns,
            row.last_seen_ns,
        )

    def add_trace(self, old: TraceRow | None, new: TraceRow) -> None:
        """Subtract `old` (None: the trace is new to the user) and add `new`. A trace's start only
        moves earlier and its end later as spans arrive, so first/last seen stay exact as min/max."""
        if old is None:
            self.trace_count += 1
        else:
            self.total_tokens -= old.total_tokens
            self.cost_nanos -= old.cost_nanos
            self.error_count -= old.error_count > 0
        self.total_tokens += new.total_tokens
        self.cost_nanos += new.cost_nanos
        self.error_count += new.error_count > 0
        if self.first_seen_ns is None or new.start_ns < self.first_seen_ns:
            self.first_seen_ns = new.start_ns
        if self.last_seen_ns is None or new.end_ns > self.last_seen_ns:
            self.last_seen_ns = new.end_ns

    def row(self) -> UserRow:
        assert self.first_seen_ns is not None and self.last_seen_ns is not None  # a trace was added
        nanos = saturated(self.cost_nanos)
        return UserRow(
            self.project,
            self.user_id,
            self.session_count,
            self.trace_count,
            saturated(self.total_tokens),
            nanos / 1e9,
            nanos,
            self.error_count,
            self.first_seen_ns,
            self.last_seen_ns,
        )


def _write_users(
    connection: sqlite3.Connection,
    changes: dict[str, TraceChange],
    session_counts: Counter[Key],
    deltas: dict[str, ProjectDelta],
) -> None:
    touched = {
        (change.new.project, user_id)
        for change in changes.values()
        for user_id in (change.old.user_id if change.old else None, change.new.user_id)
        if user_id
    }
    if not touched:
        return
    users: dict[Key, _UserTally] = {}
    for project, user_ids in by_project(touched).items():
        for row in user_writes.select_users(connection, project, user_ids):
            users[(row.project, row.user_id)] = _UserTally.of(row)
    recount: set[Key] = set()
    for change in changes.values():
        project = change.new.project
        old_user = change.old.user_id if change.old else None
        new_user = change.new.user_id
        if old_user and old_user != new_user:
            recount.add((project, old_user))  # min/max cannot be undone by a delta
        if new_user and (project, new_user) not in recount:
            user = users.get((project, new_user))
            if user is None:
                user = users[(project, new_user)] = _UserTally(project, new_user)
                deltas[project].users += 1
            # A trace that named no user, or another one, joins new_user afresh.
            user.add_trace(change.old if old_user == new_user else None, change.new)
    for key, delta in session_counts.items():
        if key in users and key not in recount:
            users[key].session_count += delta
    rows: list[UserRow] = []
    for key in recount:
        users.pop(key, None)
        recounted = user_writes.recount_user(connection, *key)
        if recounted is None:
            user_writes.delete_user(connection, *key)
            deltas[key[0]].users -= 1
        else:
            rows.append(recounted)
    rows.extend(user.row() for user in users.values())
    user_writes.upsert_users(connection, rows)
