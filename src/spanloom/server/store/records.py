"""The records the `Store` protocol (base.py) reads and writes: spans as stored, the summaries
and details of traces, sessions, users and projects, pages of them, and what a write returns.

Times are integers in nanoseconds since the Unix epoch (as OTLP sends them); durations and
latencies are float milliseconds. Sessions and users are keyed by (project, id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from spanloom.server.store.evaluation_types import EvaluationAggregate, EvaluationRecord

_T = TypeVar("_T")

StatusCode = Literal["UNSET", "OK", "ERROR"]
SessionStatus = Literal["active", "idle", "ended"]


@dataclass(slots=True)
class SpanRecord:
    """One normalized span, as ingest produces it and `get_trace` returns it."""

    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str | None
    name: str
    project: str
    start_time_ns: int
    end_time_ns: int
    otel_kind: str = "INTERNAL"  # OpenTelemetry's SpanKind name (SERVER, CLIENT, ...)
    span_kind: str = "UNKNOWN"  # OpenInference kind (LLM, CHAIN, TOOL, ...)
    session_id: str | None = None
    user_id: str | None = None
    status_code: StatusCode = "UNSET"
    status_message: str = ""
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None  # USD, from the price table
    input: str | None = None
    output: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_time_ns - self.start_time_ns) / 1e6

    def __reduce__(self) -> tuple[type[SpanRecord], tuple[Any, ...]]:
        # Pickled as its fields in order: decoding processes hand every ingested span back
        # pickled, and a slotted dataclass's default (its slots as a dict, set one by one) took
        # 1.5x as long to load and 1.4x as long to dump (a batch's spans and rows: 5.0 against
        # 3.4 µs a span to load, 9.6 against 7.0 to dump).
        return (SpanRecord, _span_fields(self))


_span_fields = attrgetter(*SpanRecord.__dataclass_fields__)


@dataclass(slots=True)
class InsertResult:
    """What one `insert_spans` call wrote, once committed."""

    accepted: int  # spans stored; a span already stored counts as accepted, not duplicated
    rejected: int = 0  # spans not stored (for a trace of a project the sender may not write)
    reasons: tuple[str, ...] = ()  # why, one line per cause, for OTLP's partial_success
    # The accepted spans as they were written (each of its trace's project), for whatever acts on
    # committed spans (server evaluators): not the spans as sent.
    written: Sequence[SpanRecord] = ()


@dataclass(frozen=True, slots=True)
class Retention:
    """What retention deletes: whole sessions whose last turn ended before their project's
    cutoff, and traces without a session that ended before it. Times in ns since the epoch;
    `cutoffs` for named projects, `default_cutoff` for every other (None: keep them)."""

    cutoffs: dict[str, int] = field(default_factory=dict)
    default_cutoff: int | None = None

    def cutoff(self, project: str) -> int | None:
        return self.cutoffs.get(project, self.default_cutoff)


@dataclass(slots=True)
class RetentionResult:
    """What one `delete_expired` call deleted."""

    sessions: int = 0
    traces: int = 0  # all the traces deleted: those of the sessions and those without one
    spans: int = 0
    more: bool = False  # it stopped at its limit: call again


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the store accepts a write now (`GET /readyz`). `reason` says what is wrong when it
    does not, for an operator ("storage is full ...", "the writer has not taken a write for 2 s")."""

    ready: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What `GET /metrics` shows of the store; read without scanning anything."""

    size_bytes: int  # what the store takes on disk (its files, or its tables' parts)
    queued_writes: int  # write requests waiting for the writer
    unindexed_traces: int = 0  # traces waiting for the store's text indexer (SQLite)


@dataclass(slots=True)
class TraceSummary:
    trace_id: str
    project: str
    session_id: str | None
    user_id: str | None
    root_span_id: str | None  # None until the root span has arrived
    name: str
    span_kind: str
    start_time_ns: int
    end_time_ns: int
    latency_ms: float  # the root's duration, else first start to last end
    span_count: int
    error_count: int  # spans with status ERROR
    total_tokens: int
    cost: float
    status: StatusCode  # ERROR when any span failed, else the root's status
    input: str | None
    output: str | None
    tags: list[str]
    metadata: dict[str, Any]
    # The results on this trace's spans; filled where a page shows them (a session's turns, a trace).
    evaluations: list[EvaluationRecord] = field(default_factory=list)


@dataclass(slots=True)
class SessionSummary:
    session_id: str
    project: str
    user_id: str | None
    trace_count: int  # turns
    # In a list (list_sessions, list_replays): previews, the words said and the answer cut to
    # turn_previews.PREVIEW_CHARS. Of one session (get_session): the texts whole.
    first_input: str | None
    last_output: str | None
    start_time_ns: int
    end_time_ns: int
    total_tokens: int
    cost: float
    error_count: int  # turns (traces) with at least one failed span
    latency_p50_ms: float
    latency_p95_ms: float
    tags: list[str]
    metadata: dict[str, Any]
    # by evaluation name: the results on its turns' spans and on the session itself, together
    evaluations: dict[str, EvaluationAggregate] = field(default_factory=dict)
    ended: bool = False  # ended (end_session, or a span marked session.ended) with no turn since

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_time_ns - self.start_time_ns) / 1e6

    def status(self, idle_before_ns: int) -> SessionStatus:
        """ended; else idle when its last turn ended before `idle_before_ns`; else active."""
        if self.ended:
            return "ended"
        return "idle" if self.end_time_ns < idle_before_ns else "active"


@dataclass(slots=True)
class UserSummary:
    user_id: str
    project: str
    session_count: int
    trace_count: int
    total_tokens: int
    cost: float
    error_count: int  # traces with at least one failed span
    first_seen_ns: int
    last_seen_ns: int
    evaluations: dict[str, EvaluationAggregate] = field(default_factory=dict)  # by evaluation name

    @property
    def error_rate(self) -> float:
        return self.error_count / self.trace_count if self.trace_count else 0.0


@dataclass(slots=True)
class ProjectSummary:
    name: str
    span_count: int
    trace_count: int
    session_count: int
    user_count: int
    first_span_time_ns: int
    last_span_time_ns: int


@dataclass(slots=True)
class Page(Generic[_T]):
    items: list[_T]
    next_cursor: str | None


FailingReason = Literal["error", "evaluation"]


class FailingTurns(NamedTuple):
    """A session's failing turns: how many, and the (start, trace id) of the first with an error
    and of the first with an evaluation that did not pass."""

    total: int
    first_error: tuple[int, str] | None
    first_evaluation_failure: tuple[int, str] | None


def failing_turns_of(turns: Sequence[TraceSummary]) -> FailingTurns:
    """What `FailingTurns` says of a whole session, from its turns in time order (`turn_failed`)."""
    failed = [turn for turn in turns if turn_failed(turn)]
    by_error = next((turn for turn in failed if turn.error_count > 0), None)
    by_result = next((turn for turn in failed if failed_evaluations(turn)), None)
    return FailingTurns(
        len(failed),
        (by_error.start_time_ns, by_error.trace_id) if by_error else None,
        (by_result.start_time_ns, by_result.trace_id) if by_result else None,
    )


@dataclass(slots=True)
class FailingTurn:
    """The first turn of a session that failed: a span with an error, or an evaluation result that
    did not pass (a low score or a failing label, see `evaluation_passed`)."""

    index: int  # its position in the whole session, from 0
    trace_id: str
    reason: FailingReason  # "error" when the turn has a failed span
    cursor: str  # a turns cursor whose page starts at this turn


@dataclass(slots=True)
class SessionDetail:
    summary: SessionSummary
    # A page of the session's traces, in time order (every trace when read without a limit).
    turns: list[TraceSummary]
    # each turn's TOOL spans, by trace id, in time order: the transcript folds them in
    tool_calls: dict[str, list[SpanRecord]] = field(default_factory=dict)
    first_turn_index: int = 0  # the position of turns[0] in the session
    # Results on the whole session (session evaluators, feedback on the session), by name.
    results: list[EvaluationRecord] = field(default_factory=list)
    next_cursor: str | None = None  # the page of newer turns, when there is one
    previous_cursor: str | None = None  # the page of older turns, when there is one
    # "Where it breaks", over the whole session, not just this page: the first turn with an
    # error, else the first with an evaluation that did not pass.
    first_failing: FailingTurn | None = None
    # The first turn with an evaluation that did not pass (it may also have an error).
    first_evaluation_failure: FailingTurn | None = None
    failing_turn_count: int = 0  # turns with an error or an evaluation that did not pass


def failed_evaluations(turn: TraceSummary) -> list[EvaluationRecord]:
    """The turn's results that did not pass (a low score, a failing label, a thumbs-down)."""
    return [result for result in turn.evaluations if not result.passed]


def turn_failed(turn: TraceSummary) -> bool:
    """The one rule for a failing turn, used by the API, the header, the markers and the chart:
    an error on any of its spans, or an evaluation result that did not pass."""
    return bool(turn.error_count) or any(not result.passed for result in turn.evaluations)


@dataclass(slots=True)
class SessionTurns:
    """One session's turns, all of them, for an export (`list_session_turns`)."""

    project: str
    session_id: str
    turns: list[TraceSummary]  # in (start, trace id) order, with their evaluation results
    # Each turn's LLM and TOOL spans, whole, by trace id, in (start, span id) order; filled only
    # when asked for (a dataset is built from the LLM calls' messages).
    spans: dict[str, list[SpanRecord]] = field(default_factory=dict)


@dataclass(slots=True)
class UserDetail:
    summary: UserSummary
    sessions: Page[SessionSummary]


@dataclass(slots=True)
class TraceDetail:
    summary: TraceSummary
    spans: list[SpanRecord]  # in start order, with parent links
    # Set when `spans` is one page of the trace (`get_trace` with a limit) and more follow.
    next_cursor: str | None = None
