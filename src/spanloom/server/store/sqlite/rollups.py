"""Writing a transaction's spans plus the trace, session and user rollups they change.

Each touched trace is recounted once per transaction from its spans (few), and its row is
rewritten only if it changed. Sessions are recounted from the covering index traces_by_session
(never a trace row, and never more than the session's own turns), by a few statements for all
of a transaction's sessions that do the adding up in SQLite; only the latencies (for the
percentiles) come into Python. Users can have any number of traces, so they change by deltas:
each changed trace subtracts its old contribution and adds its new one, in the same transaction.
The rare change a delta cannot express (a trace leaving its user when the root arrives naming
another) recounts that user. Every path ends in the rows a recount from the raw spans would give,
whatever the arrival order: see tests/server/test_store_rollups.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from spanloom.server.store.base import SpanRecord
from spanloom.server.store.evaluation_events import evaluations_of_spans
from spanloom.server.store.sqlite import evaluation_rollups, span_rows
from spanloom.server.store.sqlite import write_queries as sql
from spanloom.server.store.sqlite.statements import to_json
from spanloom.server.store.sqlite.trace_rollup import (
    compute_trace,
    facts_of,
    facts_of_row,
    merge_labels,
    percentile,
)

_T = {name: index for index, name in enumerate(sql.TRACE_COLUMNS)}
_SO = {name: index for index, name in enumerate(sql.SESSION_TOTAL_COLUMNS)}
_SF = {name: index for index, name in enumerate(sql.SESSION_FIRST_COLUMNS)}
_U = {name: index for index, name in enumerate(sql.USER_COLUMNS)}

# trace id -> (the row before this transaction or None, the row now, (input span, output span) now)
_Changes = dict[str, tuple[tuple[Any, ...] | None, tuple[Any, ...], tuple[Any, Any]]]


def write_batch(connection: sqlite3.Connection, spans: Sequence[SpanRecord]) -> None:
    """Insert spans and update every rollup they touch. The caller owns the transaction.
    `spans` may come prepared (`prepare`): their rows are then not built here."""
    before = connection.total_changes
    sql.insert_spans(connection, span_rows.rows_of(spans))
    if connection.total_changes == before:
        return  # every span was already stored (a retried batch): no rollup changes
    changes = _write_traces(connection, spans)
    session_counts = _write_sessions(connection, changes)
    _write_users(connection, changes, session_counts)
    # Evaluation aggregates follow their traces: first carry stored results along with traces that
    # changed session or user, then add the results this batch's spans carry (as `evaluation`
    # events), so they count once, under the trace's owners as of this commit.
    evaluation_rollups.move_traces(connection, _moves(changes))
    from_events = evaluations_of_spans(spans)
    if from_events:
        evaluation_rollups.write_rows(connection, evaluation_rollups.resolve(connection, from_events)[0])


def _moves(changes: _Changes) -> dict[str, tuple[Any, Any, Any, Any]]:
    keys = (_T["session_id"], _T["user_id"])
    return {
        trace_id: (old[keys[0]], old[keys[1]], new[keys[0]], new[keys[1]])
        for trace_id, (old, new, _) in changes.items()
        if old is not None and (old[keys[0]], old[keys[1]]) != (new[keys[0]], new[keys[1]])
    }


def _by_trace(spans: Iterable[SpanRecord]) -> dict[str, dict[str, SpanRecord]]:
    by_trace: dict[str, dict[str, SpanRecord]] = {}
    for span in spans:
        # The first copy of a span wins, as INSERT OR IGNORE keeps it.
        by_trace.setdefault(span.trace_id, {}).setdefault(span.span_id, span)
    return by_trace


def prepare(spans: Iterable[SpanRecord]) -> span_rows.PreparedSpans:
    """`span_rows.prepare`, plus each trace's rollup from these spans alone: computed in the
    caller's thread, so the writer (the one serial step of ingest) only checks that the trace had
    no stored span and writes it."""
    prepared = span_rows.prepare(spans)
    prepared.rollups = {
        trace_id: compute_trace(trace_id, map(facts_of, records.values()))
        for trace_id, records in _by_trace(prepared).items()
    }
    return prepared


def _write_traces(connection: sqlite3.Connection, spans: Sequence[SpanRecord]) -> _Changes:
    by_trace = _by_trace(spans)
    precomputed = getattr(spans, "rollups", None) or {}
    old_rows = {row[0]: row for row in sql.select_traces(connection, list(by_trace))}
    stored: dict[str, list[Any]] = {}
    if old_rows:
        # A trace with a row had spans before this transaction: recount from all that is stored.
        for row in sql.select_stored_spans(connection, list(old_rows)):
            stored.setdefault(row[0], []).append(facts_of_row(row[1:]))
    changes: _Changes = {}
    for trace_id, records in by_trace.items():
        old = old_rows.get(trace_id)
        if old is None:
            # No row means no stored span (rows are written with their spans): all are here.
            rollup = precomputed.get(trace_id) or compute_trace(trace_id, map(facts_of, records.values()))
        else:
            rollup = compute_trace(trace_id, stored[trace_id])
            if rollup.row == old:
                continue  # nothing new (retried spans)
        changes[trace_id] = (old, rollup.row, (rollup.input_span_id, rollup.output_span_id))
    sql.upsert_traces(connection, [(*new, *texts) for _, new, texts in changes.values()])
    return changes


def _write_sessions(connection: sqlite3.Connection, changes: _Changes) -> Counter[str]:
    """Recount every session a changed trace left or joined; returns each user's change in
    session count (a session counts for a user while one of its traces names them)."""
    joined: dict[str, Counter[str | None]] = {}
    left: dict[str, Counter[str | None]] = {}
    for old, new, _ in changes.values():
        if old is not None and old[_T["session_id"]]:
            left.setdefault(old[_T["session_id"]], Counter())[old[_T["user_id"]]] += 1
        if new[_T["session_id"]]:
            joined.setdefault(new[_T["session_id"]], Counter())[new[_T["user_id"]]] += 1
    session_counts: Counter[str] = Counter()
    session_ids = list(dict.fromkeys([*left, *joined]))
    if not session_ids:
        return session_counts
    # A session counts for a user while one of its traces names them: only the users a changed
    # trace named before or after can have come or gone.
    pairs = {
        (session_id, user_id)
        for moved in (joined, left)
        for session_id, users in moved.items()
        for user_id in users
        if user_id is not None
    }
    for session_id, user_id, now in sql.select_session_user_counts(connection, list(pairs)):
        came, went = joined.get(session_id, Counter()), left.get(session_id, Counter())
        session_counts[user_id] += (now > 0) - (now - came[user_id] + went[user_id] > 0)
    totals = sql.select_session_totals(connection, session_ids)
    found = [row[0] for row in totals]
    latencies = sql.select_session_latencies(connection, found)
    firsts = {row[0]: row for row in sql.select_session_firsts(connection, found)}
    # Written without first reading the stored rows to compare: only sessions with a changed
    # trace get here, and a changed trace nearly always changes its session's row.
    sql.upsert_sessions(
        connection, [_session_row(connection, row, firsts[row[0]], latencies[row[0]]) for row in totals]
    )
    sql.delete_sessions(connection, [session_id for session_id in session_ids if session_id not in firsts])
    return session_counts


def _session_row(
    connection: sqlite3.Connection, totals: tuple[Any, ...], firsts: tuple[Any, ...], latencies: list[float]
) -> tuple[Any, ...]:
    """A sessions row (SESSION_COLUMNS) from its rows of select_session_totals and _firsts."""
    session_id, count = totals[_SO["session_id"]], totals[_SO["trace_count"]]
    tags_json, metadata_json = "[]", "{}"
    if totals[_SO["labeled"]]:
        labels = sql.select_session_labels(connection, session_id)
        tags, metadata = merge_labels((json.loads(tags), json.loads(meta)) for tags, meta in labels)
        tags_json = to_json(tags) if tags else "[]"
        metadata_json = to_json(metadata) if metadata else "{}"
    nanos = totals[_SO["cost_nanos"]]
    latencies.sort()
    return (
        session_id,
        firsts[_SF["project"]],
        firsts[_SF["user_id"]],
        count,
        totals[_SO["start_ns"]],
        totals[_SO["end_ns"]],
        totals[_SO["total_tokens"]],
        nanos / 1e9,
        nanos,
        totals[_SO["error_count"]],
        percentile(latencies, 0.5),
        percentile(latencies, 0.95),
        firsts[_SF["first_input_trace"]],
        firsts[_SF["last_output_trace"]],
        tags_json,
        metadata_json,
    )


def _write_users(connection: sqlite3.Connection, changes: _Changes, session_counts: Counter[str]) -> None:
    touched = dict.fromkeys(
        user_id
        for old, new, _ in changes.values()
        for user_id in (old[_T["user_id"]] if old else None, new[_T["user_id"]])
        if user_id
    )
    if not touched:
        return
    users = {row[0]: list(row) for row in sql.select_users(connection, list(touched))}
    recount: set[str] = set()
    for trace_id, (old, new, _) in changes.items():
        old_user, new_user = (old[_T["user_id"]] if old else None), new[_T["user_id"]]
        if old_user and old_user != new_user:
            recount.add(old_user)  # min/max cannot be undone by a delta
        if new_user and new_user not in recount:
            user = users.get(new_user)
            if user is None:
                user = users[new_user] = [new_user, "", 0, 0, 0, 0.0, 0, 0, None, None, None]
            # A trace that named no user, or another one, joins new_user afresh.
            _add_trace(user, trace_id, old if old_user == new_user else None, new)
    for user_id, delta in session_counts.items():
        if user_id in users and user_id not in recount:
            users[user_id][_U["session_count"]] += delta
    for user_id in recount:
        users.pop(user_id, None)
        _recount_user(connection, user_id)
    for user in users.values():
        user[_U["cost"]] = user[_U["cost_nanos"]] / 1e9
    sql.upsert_users(connection, users.values())


def _add_trace(user: list[Any], trace_id: str, old: tuple[Any, ...] | None, new: tuple[Any, ...]) -> None:
    """Apply one trace's change to its user's rollup: subtract `old` (None: the trace is new to
    the user) and add `new`. A trace's start only moves earlier and its end later as spans
    arrive, so first/last seen stay exact as min/max."""
    if old is None:
        user[_U["trace_count"]] += 1
        old_tokens = old_nanos = old_failed = 0
    else:
        old_tokens, old_nanos = old[_T["total_tokens"]], old[_T["cost_nanos"]]
        old_failed = int(old[_T["error_count"]] > 0)
    user[_U["total_tokens"]] += new[_T["total_tokens"]] - old_tokens
    user[_U["cost_nanos"]] += new[_T["cost_nanos"]] - old_nanos
    user[_U["error_count"]] += int(new[_T["error_count"]] > 0) - old_failed
    start, end = new[_T["start_ns"]], new[_T["end_ns"]]
    first = user[_U["first_trace_id"]]
    # The user's project is the one of their first trace by (start, trace id).
    if first is None or first == trace_id or (start, trace_id) < (user[_U["first_seen_ns"]], first):
        user[_U["first_seen_ns"]], user[_U["first_trace_id"]] = start, trace_id
        user[_U["project"]] = new[_T["project"]]
    if user[_U["last_seen_ns"]] is None or end > user[_U["last_seen_ns"]]:
        user[_U["last_seen_ns"]] = end


def _recount_user(connection: sqlite3.Connection, user_id: str) -> None:
    traces, sessions, tokens, nanos, errors, first_seen, last_seen = sql.select_user_totals(
        connection, user_id
    )
    if not traces:
        sql.delete_user(connection, user_id)
        return
    first_trace_id, project = sql.select_user_first_trace(connection, user_id) or ("", "")
    sql.upsert_users(
        connection,
        [
            (
                user_id,
                project,
                sessions,
                traces,
                tokens,
                nanos / 1e9,
                nanos,
                errors,
                first_seen,
                last_seen,
                first_trace_id,
            )
        ],
    )
