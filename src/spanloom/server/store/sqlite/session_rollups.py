"""The session rollups of a transaction: every session a changed trace left or joined, recounted
from the covering index traces_by_session (never a trace row, and never more than the session's
own turns) by a few statements per project for all of a transaction's sessions, which do the adding
up in SQLite; only the latencies (for the percentiles) come into Python. What the transaction
already knows spares reading turns back: the texts of its new traces (session_previews.py), and
for a session that only gained later turns its firsts and labels (session_appends.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from spanloom.server.store.base import SpanRecord
from spanloom.server.store.sqlite import session_appends, session_writes
from spanloom.server.store.sqlite.project_writes import ProjectDelta
from spanloom.server.store.sqlite.session_previews import Previews, TurnTexts, session_previews
from spanloom.server.store.sqlite.session_writes import SessionFirsts, SessionRow, SessionTotals
from spanloom.server.store.sqlite.statements import by_project
from spanloom.server.store.sqlite.trace_changes import Key, TraceChange
from spanloom.server.store.trace_rollup import TraceRow, labels_json, merge_labels, percentile


def new_turn_texts(by_trace: dict[str, dict[str, SpanRecord]], changes: dict[str, TraceChange]) -> TurnTexts:
    """(input, output) of the traces new in this transaction, from its spans by trace and span id
    (span_rows.by_trace: the first copy of a span, the one stored): a new trace's spans are all
    in the transaction."""
    texts: dict[str, tuple[str | None, str | None]] = {}
    for trace_id, change in changes.items():
        if change.old is None:
            records = by_trace[trace_id]
            source_in = records.get(change.input_span_id or "")
            source_out = records.get(change.output_span_id or "")
            texts[trace_id] = (
                source_in.input if source_in is not None else None,
                source_out.output if source_out is not None else None,
            )
    return texts


@dataclass(slots=True)
class _SessionMoves:
    """How a transaction's changed traces move between sessions, by (project, session id)."""

    joined: dict[Key, Counter[str | None]] = field(default_factory=dict)  # traces in, by user
    left: dict[Key, Counter[str | None]] = field(default_factory=dict)  # traces out, by user
    new_turns: dict[Key, list[TraceRow]] = field(default_factory=dict)  # new traces in
    disturbed: set[Key] = field(default_factory=set)  # a stored trace left, joined or changed

    @classmethod
    def of(cls, changes: dict[str, TraceChange]) -> _SessionMoves:
        moves = cls()
        for change in changes.values():
            old, new = change.old, change.new
            if old is not None and old.session_id:
                moves.left.setdefault((old.project, old.session_id), Counter())[old.user_id] += 1
                moves.disturbed.add((old.project, old.session_id))
            if new.session_id:
                key = (new.project, new.session_id)
                moves.joined.setdefault(key, Counter())[new.user_id] += 1
                if old is None:
                    moves.new_turns.setdefault(key, []).append(new)
                else:
                    moves.disturbed.add(key)
        return moves

    def users(self, key: Key) -> tuple[Counter[str | None], Counter[str | None]]:
        """The users the traces that joined and left this session name."""
        return self.joined.get(key, _NONE), self.left.get(key, _NONE)


_NONE: Counter[str | None] = Counter()  # read only


def update_sessions(
    connection: sqlite3.Connection,
    changes: dict[str, TraceChange],
    deltas: dict[str, ProjectDelta],
    known: TurnTexts,
) -> Counter[Key]:
    """Recount every session a changed trace left or joined; returns each user's change in
    session count (a session counts for a user while one of its traces names them), and counts
    the sessions that appeared or went in `deltas`."""
    moves = _SessionMoves.of(changes)
    session_counts: Counter[Key] = Counter()
    for project, session_ids in by_project([*moves.left, *moves.joined]).items():
        after = _recount_sessions(
            connection, project, session_ids, moves, session_counts, known, changes.keys()
        )
        delta = deltas[project]
        for session_id in session_ids:
            now = after.get(session_id, 0)
            # A trace that stayed in its session is in both `left` and `joined`.
            joined, left = moves.users((project, session_id))
            before = now - sum(joined.values()) + sum(left.values())
            delta.sessions += (now > 0) - (before > 0)
    return session_counts


def _recount_sessions(
    connection: sqlite3.Connection,
    project: str,
    session_ids: list[str],
    moves: _SessionMoves,
    session_counts: Counter[Key],
    known: TurnTexts,
    changed: Collection[str],
) -> dict[str, int]:
    """Returns each of these sessions' turn count now (0: gone)."""
    stored = session_writes.select_stored_sessions(connection, project, session_ids)
    appends = session_appends.appended(
        stored,
        {
            session_id: moves.new_turns[(project, session_id)]
            for session_id in session_ids
            if (project, session_id) in moves.new_turns
        },
        {session_id for session_id in session_ids if (project, session_id) in moves.disturbed},
    )
    # A session counts for a user while one of its traces names them: only the users a changed
    # trace named before or after can have come or gone. A session that only gained turns still
    # counts for the first user its stored turns named.
    pairs = {
        (session_id, user_id)
        for moved in (moves.joined, moves.left)
        for (key_project, session_id), users in moved.items()
        if key_project == project
        for user_id in users
        if user_id is not None and not (session_id in appends and stored[session_id].user_id == user_id)
    }
    if pairs:
        for session_id, user_id, now in session_writes.select_session_user_counts(
            connection, project, list(pairs)
        ):
            joined, left = moves.users((project, session_id))
            came, went = joined[user_id], left[user_id]
            session_counts[(project, user_id)] += (now > 0) - (now - came + went > 0)
    rows = recount_sessions(connection, project, session_ids, Recount(stored, appends, known, changed))
    # Only sessions with a changed trace get here, and a changed trace nearly always changes its
    # session's row: written without comparing, in a turn's columns alone where the rest stayed.
    session_writes.write_sessions(connection, rows, stored)
    found = {row.session_id: row.trace_count for row in rows}
    session_writes.delete_sessions(connection, project, [sid for sid in session_ids if sid not in found])
    return found


@dataclass(slots=True)
class Recount:
    """What a transaction knows that spares a recount reading the session's turns back: the
    stored rows, the sessions that only gained later turns (session_appends.py), and the texts
    (session_previews.py)."""

    stored: dict[str, SessionRow]
    appends: dict[str, list[TraceRow]]
    known: TurnTexts
    changed: Collection[str] | None


def recount_sessions(
    connection: sqlite3.Connection,
    project: str,
    session_ids: Sequence[str],
    spare: Recount | None = None,
) -> list[SessionRow]:
    """The rows of those of these sessions of the project that have traces, from their traces
    (and, with `spare`, from what the transaction knows)."""
    spare = spare or Recount({}, {}, {}, None)
    totals = session_writes.select_session_totals(connection, project, session_ids)
    appends = spare.appends
    firsts = session_writes.select_session_firsts(
        connection, project, [row.session_id for row in totals if row.session_id not in appends]
    )
    for row in totals:
        if row.session_id in appends:
            firsts[row.session_id] = session_appends.firsts_after(
                spare.stored[row.session_id], appends[row.session_id]
            )
    previews = session_previews(connection, list(firsts.values()), spare.stored, spare.known, spare.changed)
    rows = []
    for row in totals:
        if not row.labeled:
            labels = ("[]", "{}")
        elif row.session_id in appends:
            labels = session_appends.labels_after(spare.stored[row.session_id], appends[row.session_id])
        else:
            labels = _recounted_labels(connection, project, row.session_id)
        rows.append(_session_row(project, row, firsts[row.session_id], previews[row.session_id], labels))
    return rows


def _recounted_labels(connection: sqlite3.Connection, project: str, session_id: str) -> tuple[str, str]:
    """(tags, metadata) JSON of a session, from its labeled turns."""
    labels = session_writes.select_session_labels(connection, project, session_id)
    return labels_json(*merge_labels((json.loads(tags), json.loads(meta)) for tags, meta in labels))


def _session_row(
    project: str,
    totals: SessionTotals,
    firsts: SessionFirsts,
    previews: Previews,
    labels: tuple[str, str],
) -> SessionRow:
    latencies = totals.latency_list()
    latencies.sort()
    return SessionRow(
        project=project,
        session_id=totals.session_id,
        user_id=firsts.user_id,
        trace_count=totals.trace_count,
        start_ns=totals.start_ns,
        end_ns=totals.end_ns,
        total_tokens=totals.total_tokens,
        cost=totals.cost_nanos / 1e9,
        cost_nanos=totals.cost_nanos,
        error_count=totals.error_count,
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p95_ms=percentile(latencies, 0.95),
        first_input_trace=firsts.first_input_trace,
        last_output_trace=firsts.last_output_trace,
        first_input_preview=previews[0],
        last_output_preview=previews[1],
        tags=labels[0],
        metadata=labels[1],
    )
