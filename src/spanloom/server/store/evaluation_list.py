"""The list of individual evaluation results (`Store.list_evaluations`): its query, its record,
and its cursor, shared by every backend so both page in the same order.

Results on spans and on whole turns (feedback on a trace) come first, in (trace id, span id, name,
source, key) order, whatever their project (a trace belongs to one project): SQLite's primary key,
so a page is read from the cursor on, not sorted out of everything. Results on whole sessions
(session evaluators, feedback on a session) follow, in (project, session id, name, source, key)
order, the session results table's key in both backends. A replaced result is one row (the stored
one), so it shows once, with its latest value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from spanloom.server.store.cursor import InvalidCursorError, decode_cursor, encode_cursor
from spanloom.server.store.evaluation_types import evaluation_passed
from spanloom.server.store.records import Page

# What a result judges: one span, a whole turn (feedback on a trace), or a whole conversation.
EvaluationLevel = Literal["span", "trace", "session"]
EVALUATIONS_CURSOR = "evaluations"
# The cursor's sort value: which of the two parts of the list its row is in.
ON_TRACES, ON_SESSIONS = 0, 1
_KEY_LENGTH = 5


@dataclass(slots=True)
class EvaluationQuery:
    """Filters and page of `list_evaluations`. `start_ns`/`end_ns` bound the time the result was
    recorded (both inclusive). `session_id` keeps results on that session's turns and on the
    session itself; `trace_id` and `span_id` keep results on spans and turns only."""

    project: str | None = None
    name: str | None = None
    session_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    source: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    limit: int = 50
    cursor: str | None = None

    @property
    def on_traces_only(self) -> bool:
        """Session results have no trace or span: a filter on either leaves them out."""
        return self.trace_id is not None or self.span_id is not None


@dataclass(slots=True)
class EvaluationResult:
    """One stored result with what it belongs to. `trace_id` and `span_id` are None on a session's
    result, `span_id` on a turn's; `session_id` and `user_id` are those of the trace's (or the
    session's) as stored, None when it has none."""

    level: EvaluationLevel
    project: str
    trace_id: str | None
    span_id: str | None
    session_id: str | None
    user_id: str | None
    name: str
    source: str
    key: str  # tells apart several results of one name and source on one target (a feedback's id)
    score: float | None
    label: str | None
    explanation: str | None
    time_ns: int
    details: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return evaluation_passed(self.score, self.label, self.source)


def level_of(span_id: str) -> EvaluationLevel:
    """A result on a trace's row: on one span, or on the whole turn (stored with span id '')."""
    return "span" if span_id else "trace"


def evaluation_cursor(result: EvaluationResult) -> str:
    """The cursor of the page after `result`."""
    if result.level == "session":
        key = (result.project, result.session_id or "", result.name, result.source, result.key)
        return encode_cursor(EVALUATIONS_CURSOR, ON_SESSIONS, key)
    key = (result.trace_id or "", result.span_id or "", result.name, result.source, result.key)
    return encode_cursor(EVALUATIONS_CURSOR, ON_TRACES, key)


def decode_evaluation_cursor(cursor: str) -> tuple[int, tuple[str, ...]]:
    """(ON_TRACES, the key of the trace result it follows) or (ON_SESSIONS, the key of the session
    result); InvalidCursorError for anything else."""
    part, key = decode_cursor(cursor, EVALUATIONS_CURSOR, _KEY_LENGTH)
    if type(part) is int and part in (ON_TRACES, ON_SESSIONS):
        return part, key
    raise InvalidCursorError("not a cursor from this server")


def details_from_json(text: str | None) -> dict[str, Any]:
    # "{}" for most results: skip the parse.
    return json.loads(text) if text and text != "{}" else {}


def result_on_trace(
    project: str,
    trace_id: str,
    span_id: str,
    name: str,
    source: str,
    key: str,
    score: float | None,
    label: str | None,
    explanation: str | None,
    time_ns: int,
    details: str | None,
    session_id: str | None,
    user_id: str | None,
) -> EvaluationResult:
    """The record of a stored result on a span or a turn, from its columns in this order (both
    backends select them so)."""
    return EvaluationResult(
        level=level_of(span_id),
        project=project,
        trace_id=trace_id,
        span_id=span_id or None,
        session_id=session_id,
        user_id=user_id,
        name=name,
        source=source,
        key=key,
        score=score,
        label=label,
        explanation=explanation,
        time_ns=time_ns,
        details=details_from_json(details),
    )


def result_on_session(
    project: str,
    session_id: str,
    name: str,
    source: str,
    key: str,
    score: float | None,
    label: str | None,
    explanation: str | None,
    time_ns: int,
    details: str | None,
    user_id: str | None,
) -> EvaluationResult:
    """The record of a stored result on a whole session, from its columns in this order."""
    return EvaluationResult(
        level="session",
        project=project,
        trace_id=None,
        span_id=None,
        session_id=session_id,
        user_id=user_id,
        name=name,
        source=source,
        key=key,
        score=score,
        label=label,
        explanation=explanation,
        time_ns=time_ns,
        details=details_from_json(details),
    )


PartReader = Callable[[EvaluationQuery, "tuple[str, ...] | None", int], list[EvaluationResult]]


def evaluation_page(
    query: EvaluationQuery, on_traces: PartReader, on_sessions: PartReader
) -> Page[EvaluationResult]:
    """A page of results: those on traces after the cursor, then (once they run out) those on
    sessions; one more row than the page is read to know whether another page follows. Each
    reader gives up to `limit` results of its part after the key it is given (None: from the
    start), in the part's order."""
    part, after = (ON_TRACES, None) if query.cursor is None else decode_evaluation_cursor(query.cursor)
    wanted = query.limit + 1
    items: list[EvaluationResult] = []
    if part == ON_TRACES:
        items = on_traces(query, after, wanted)
        after = None
    if len(items) < wanted and not query.on_traces_only:
        items += on_sessions(query, after, wanted - len(items))
    more = len(items) > query.limit
    items = items[: query.limit]
    return Page(items, evaluation_cursor(items[-1]) if more else None)
