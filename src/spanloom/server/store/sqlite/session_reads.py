"""SQL of the read path for sessions: the list, one session, and where an id exists."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from spanloom.server.store.base import (
    FailingReason,
    FailingTurn,
    ListQuery,
    Page,
    SessionDetail,
    SessionSummary,
)
from spanloom.server.store.evaluation_types import FEEDBACK
from spanloom.server.store.json_values import from_json, to_json
from spanloom.server.store.sqlite import evaluation_reads, span_reads, trace_reads
from spanloom.server.store.sqlite.list_paging import Conditions, ListShape, Sort, eval_sort, like, page
from spanloom.server.store.sqlite.schema import REPLAY_OF_EXPRESSION
from spanloom.server.store.sqlite.search_terms import CANDIDATE, match_expression
from spanloom.server.store.sqlite.span_text import TRACE_INPUT, TRACE_OUTPUT, span_text
from spanloom.server.store.turn_pages import (
    TurnKey,
    TurnWindow,
    failing_turn_at,
    first_key,
    turns_before,
    turns_from,
)

_FIRST_INPUT = span_text("input", "t.input_span_id")
_LAST_OUTPUT = span_text("output", "t.output_span_id")


def _columns(first_input: str, last_output: str) -> str:
    return (
        f"s.project, s.session_id, s.user_id, s.trace_count, {first_input}, {last_output}, s.start_ns,"
        " s.end_ns, s.total_tokens, s.cost, s.error_count, s.latency_p50_ms, s.latency_p95_ms, s.tags,"
        # Ended with no turn since (a turn that ends after the end mark reopens the session).
        " s.metadata, COALESCE(m.ended_ns >= s.end_ns, 0)"
    )


# One session: its texts whole, read from the spans they came from (through the trace's
# input/output span). They live there once: session and trace rows stay small, so rewriting them
# as turns arrive stays cheap.
_WHOLE_COLUMNS = _columns(
    f"(SELECT {_FIRST_INPUT} FROM traces t WHERE t.trace_id = s.first_input_trace)",
    f"(SELECT {_LAST_OUTPUT} FROM traces t WHERE t.trace_id = s.last_output_trace)",
)
# A list: the previews the row keeps (turn_previews.py). Reading each text from its span was
# nine tenths of a list page's time, two page reads per session from a cache every commit empties.
_LIST_COLUMNS = _columns("s.first_input_preview", "s.last_output_preview")
_MARKS = " LEFT JOIN session_marks m ON m.project = s.project AND m.session_id = s.session_id"


def _session(row: tuple[Any, ...]) -> SessionSummary:
    (
        project,
        session_id,
        user_id,
        trace_count,
        first_input,
        last_output,
        start_ns,
        end_ns,
        total_tokens,
        cost,
        error_count,
        latency_p50_ms,
        latency_p95_ms,
        tags,
        metadata,
        ended,
    ) = row
    return SessionSummary(
        session_id=session_id,
        project=project,
        user_id=user_id,
        trace_count=trace_count,
        first_input=first_input,
        last_output=last_output,
        start_time_ns=start_ns,
        end_time_ns=end_ns,
        total_tokens=total_tokens,
        cost=cost,
        error_count=error_count,
        latency_p50_ms=latency_p50_ms,
        latency_p95_ms=latency_p95_ms,
        tags=from_json(tags),
        metadata=from_json(metadata),
        ended=bool(ended),
    )


SESSIONS = ListShape(
    select=f"SELECT {_LIST_COLUMNS} FROM sessions s{_MARKS}",
    sorts={
        "start_time": Sort("s.start_ns", "start_time_ns"),
        "last_activity": Sort("s.end_ns", "end_time_ns"),
        "turns": Sort("s.trace_count", "trace_count"),
        "tokens": Sort("s.total_tokens", "total_tokens"),
        "cost": Sort("s.cost", "cost"),
        "latency": Sort("s.latency_p50_ms", "latency_p50_ms"),
        "errors": Sort("s.error_count", "error_count"),
    },
    key_columns=("s.project", "s.session_id"),
    key_attributes=("project", "session_id"),
    make=_session,
)


def with_evaluations(connection: sqlite3.Connection) -> Callable[[list[SessionSummary]], None]:
    """Fills in each session's evaluation aggregates, in one query."""

    def enrich(items: list[SessionSummary]) -> None:
        found = evaluation_reads.select_session_aggregates(
            connection, [(item.project, item.session_id) for item in items]
        )
        for item in items:
            item.evaluations = found.get((item.project, item.session_id), {})

    return enrich


def list_sessions(connection: sqlite3.Connection, query: ListQuery) -> Page[SessionSummary]:
    conditions = Conditions()
    conditions.add_set(
        (
            ("s.project = ?", query.project),
            ("s.user_id = ?", query.user_id),
            ("s.end_ns >= ?", query.start_ns),
            ("s.start_ns <= ?", query.end_ns),
        )
    )
    conditions.add_common("s", query)
    _status_conditions(conditions, query)
    if query.has_negative_feedback is not None:
        conditions.add(
            ("" if query.has_negative_feedback else "NOT ")
            + "EXISTS (SELECT 1 FROM session_evaluations nf WHERE nf.project = s.project"
            " AND nf.session_id = s.session_id AND nf.name = ? AND nf.passed < nf.result_count)",
            FEEDBACK,
        )
    if query.q:
        pattern, match = like(query.q), match_expression(query.q)
        # A turn's texts are read only when the index says they may hold `q` (when it is long
        # enough to ask): the LIKE decides, the index only spares reading every text.
        candidate, candidate_params = (f" AND {CANDIDATE}", [match]) if match else ("", [])
        conditions.add(
            "(s.session_id LIKE ? ESCAPE '\\' OR s.user_id LIKE ? ESCAPE '\\'"
            " OR EXISTS (SELECT 1 FROM traces t WHERE t.project = s.project AND t.session_id = s.session_id"
            f"{candidate} AND ({TRACE_INPUT} LIKE ? ESCAPE '\\' OR {TRACE_OUTPUT} LIKE ? ESCAPE '\\')))",
            pattern,
            pattern,
            *candidate_params,
            pattern,
            pattern,
        )
    sorts, join, join_params = eval_sort(
        query, SESSIONS.sorts, "session_evaluations", ("project", "session_id"), SESSIONS.key_columns
    )
    return page(
        connection, SESSIONS, conditions, query, sorts, join, join_params, with_evaluations(connection)
    )


_OPEN = "(m.ended_ns IS NULL OR m.ended_ns < s.end_ns)"


def _status_conditions(conditions: Conditions, query: ListQuery) -> None:
    if query.session_status == "ended":
        conditions.add("m.ended_ns >= s.end_ns")
    elif query.session_status is not None:
        idle_before = query.idle_before_ns if query.idle_before_ns is not None else 0
        if query.session_status == "idle":
            conditions.add(f"{_OPEN} AND s.end_ns < ?", idle_before)
        else:
            conditions.add(f"{_OPEN} AND s.end_ns >= ?", idle_before)


def select_sessions_to_judge(
    connection: sqlite3.Connection, idle_before_ns: int, limit: int
) -> list[tuple[str, str, int]]:
    """(project, session id, end_ns) of ended or idle sessions not judged since their last turn."""
    rows = connection.execute(
        "SELECT * FROM ("
        # Idle: through the sessions' end index.
        "SELECT s.project, s.session_id, s.end_ns FROM sessions s INDEXED BY sessions_by_end"
        f"{_MARKS} WHERE s.end_ns < ?1 AND (m.judged_end_ns IS NULL OR m.judged_end_ns < s.end_ns)"
        " UNION "
        # Ended, however recently: through the marks.
        "SELECT s.project, s.session_id, s.end_ns FROM session_marks m JOIN sessions s"
        " ON s.project = m.project AND s.session_id = m.session_id"
        " WHERE m.ended_ns >= s.end_ns AND (m.judged_end_ns IS NULL OR m.judged_end_ns < s.end_ns)"
        ") ORDER BY 3, 1, 2 LIMIT ?2",
        (idle_before_ns, limit),
    ).fetchall()
    return [(project, session_id, end_ns) for project, session_id, end_ns in rows]


def select_session(connection: sqlite3.Connection, project: str, session_id: str) -> SessionSummary | None:
    row = connection.execute(
        f"SELECT {_WHOLE_COLUMNS} FROM sessions s{_MARKS} WHERE s.project = ? AND s.session_id = ?",
        (project, session_id),
    ).fetchone()
    if row is None:
        return None
    summary = _session(row)
    with_evaluations(connection)([summary])
    return summary


def select_session_detail(
    connection: sqlite3.Connection,
    project: str,
    session_id: str,
    limit: int | None,
    cursor: str | None,
    *,
    tool_calls: bool,
) -> SessionDetail | None:
    """One session (Store.get_session): its summary, a page of its turns from `cursor`, where it
    breaks; inside the caller's read transaction."""
    window = TurnWindow.of(cursor)
    summary = select_session(connection, project, session_id)
    if summary is None:
        return None
    turns = trace_reads.select_session_turns(
        connection, project, session_id, window.fetch(limit), window.after, window.before
    )
    next_key = window.next_key(turns, limit)
    first = first_key(turns)
    offset = trace_reads.count_turns_before(connection, project, session_id, first) if first else 0
    failing = trace_reads.select_failing_turns(connection, project, session_id)

    def failing_turn(key: TurnKey | None, reason: FailingReason) -> FailingTurn | None:
        if key is None:
            return None
        return failing_turn_at(
            key, trace_reads.count_turns_before(connection, project, session_id, key), reason
        )

    first_error = failing_turn(failing.first_error, "error")
    first_evaluation_failure = failing_turn(failing.first_evaluation_failure, "evaluation")
    return SessionDetail(
        summary,
        turns,
        span_reads.select_tool_spans(connection, [turn.trace_id for turn in turns]) if tool_calls else {},
        first_turn_index=offset,
        results=evaluation_reads.select_session_results(connection, project, session_id),
        next_cursor=turns_from(next_key) if next_key else None,
        previous_cursor=turns_before(first) if first and offset else None,
        first_failing=first_error or first_evaluation_failure,
        first_evaluation_failure=first_evaluation_failure,
        failing_turn_count=failing.total,
    )


def select_replays(
    connection: sqlite3.Connection, project: str, session_id: str, limit: int
) -> list[SessionSummary]:
    """Through the sessions_by_replay_of index (its expression, written the same way), named:
    ordered by start time, the planner would rather walk all the project's sessions in order."""
    expression = REPLAY_OF_EXPRESSION.replace("metadata", "s.metadata")
    rows = connection.execute(
        f"SELECT {_LIST_COLUMNS} FROM sessions s INDEXED BY sessions_by_replay_of{_MARKS}"
        f" WHERE s.project = ? AND ({expression}) = ?"
        " ORDER BY s.start_ns, s.session_id LIMIT ?",
        (project, session_id, limit),
    ).fetchall()
    items = [_session(row) for row in rows]
    with_evaluations(connection)(items)
    return items


def select_existing_sessions(
    connection: sqlite3.Connection, project: str, session_ids: Sequence[str]
) -> set[str]:
    """Which of these session ids `project` holds (a primary key seek each)."""
    rows = connection.execute(
        "SELECT session_id FROM sessions WHERE project = ?"
        " AND session_id IN (SELECT value FROM json_each(?))",
        (project, to_json(list(session_ids))),
    ).fetchall()
    return {row[0] for row in rows}


def select_session_projects(connection: sqlite3.Connection, session_id: str) -> list[str]:
    """The projects with a session of this id, by name (an index seek per project)."""
    rows = connection.execute(
        "SELECT project FROM sessions WHERE session_id = ? ORDER BY project", (session_id,)
    ).fetchall()
    return [row[0] for row in rows]
