"""Store records as JSON-ready dicts: times as ISO 8601 UTC strings, durations in milliseconds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from spanloom.server.store.base import (
    FailingTurn,
    ProjectSummary,
    SessionDetail,
    SessionSummary,
    SpanRecord,
    TraceDetail,
    TraceSummary,
    UserDetail,
    UserSummary,
    failed_evaluations,
    turn_failed,
)
from spanloom.server.store.evaluation_list import EvaluationResult
from spanloom.server.store.evaluation_types import EvaluationAggregate, EvaluationGroup, EvaluationRecord
from spanloom.server.turn_text import answer_text, user_text

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_time(nanoseconds: int | None) -> str | None:
    if nanoseconds is None:
        return None
    # Integer microseconds: a float of nanoseconds since 1970 would lose the last digits. A fixed
    # width (always six decimals) keeps the strings sortable as text.
    moment = _EPOCH + timedelta(microseconds=nanoseconds // 1000)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def project_json(project: ProjectSummary) -> dict[str, Any]:
    return {
        "name": project.name,
        "span_count": project.span_count,
        "trace_count": project.trace_count,
        "session_count": project.session_count,
        "user_count": project.user_count,
        "first_span_time": iso_time(project.first_span_time_ns),
        "last_span_time": iso_time(project.last_span_time_ns),
    }


def session_json(session: SessionSummary, idle_before_ns: int) -> dict[str, Any]:
    """`idle_before_ns`: sessions whose last turn ended before it are idle."""
    return {
        "session_id": session.session_id,
        "user_id": session.user_id,
        "project": session.project,
        "status": session.status(idle_before_ns),
        "trace_count": session.trace_count,
        "first_input": session.first_input,
        "last_output": session.last_output,
        "start_time": iso_time(session.start_time_ns),
        "end_time": iso_time(session.end_time_ns),
        "duration_ms": session.duration_ms,
        "total_tokens": session.total_tokens,
        "cost": session.cost,
        "error_count": session.error_count,
        "latency_p50_ms": session.latency_p50_ms,
        "latency_p95_ms": session.latency_p95_ms,
        "tags": session.tags,
        "metadata": session.metadata,
        "evaluations": aggregates_json(session.evaluations),
    }


def aggregate_json(aggregate: EvaluationAggregate) -> dict[str, Any]:
    return {"count": aggregate.count, "mean_score": aggregate.mean_score, "pass_rate": aggregate.pass_rate}


def aggregates_json(aggregates: dict[str, EvaluationAggregate]) -> dict[str, Any]:
    return {name: aggregate_json(aggregate) for name, aggregate in aggregates.items()}


def evaluation_json(result: EvaluationRecord) -> dict[str, Any]:
    return {
        "id": result.key or None,  # a feedback's id
        "name": result.name,
        "score": result.score,
        "label": result.label,
        "explanation": result.explanation,
        "passed": result.passed,
        "source": result.source,
        "trace_id": result.trace_id or None,
        "span_id": result.span_id or None,
        "session_id": result.session_id,
        "details": result.details,
        "time": iso_time(result.time_ns),
    }


def evaluation_result_json(result: EvaluationResult) -> dict[str, Any]:
    """An item of GET /api/evaluations: a result with what it judges and whose it is."""
    return {
        "level": result.level,
        "project": result.project,
        "trace_id": result.trace_id,
        "span_id": result.span_id,
        "session_id": result.session_id,
        "user_id": result.user_id,
        "name": result.name,
        "source": result.source,
        "id": result.key or None,  # a feedback's id
        "score": result.score,
        "label": result.label,
        "explanation": result.explanation,
        "passed": result.passed,
        "time": iso_time(result.time_ns),
        "details": result.details,
    }


def results_json(results: list[EvaluationRecord]) -> dict[str, Any]:
    """A trace's or turn's results, and their aggregate per evaluation name."""
    by_name: dict[str, list[EvaluationRecord]] = {}
    for result in results:
        by_name.setdefault(result.name, []).append(result)
    return {
        "evaluations": [evaluation_json(result) for result in results],
        "evaluation_summary": {
            name: aggregate_json(EvaluationAggregate.of(found)) for name, found in by_name.items()
        },
    }


def evaluation_group_json(group: EvaluationGroup) -> dict[str, Any]:
    return {
        "project": group.project,
        **({f"{group.group_by}_id": group.key} if group.group_by != "project" else {}),
        "name": group.name,
        **aggregate_json(group.aggregate),
        "worst": evaluation_json(group.worst) if group.worst else None,
    }


def trace_json(trace: TraceSummary) -> dict[str, Any]:
    return {
        "trace_id": trace.trace_id,
        "project": trace.project,
        "session_id": trace.session_id,
        "user_id": trace.user_id,
        "root_span_id": trace.root_span_id,
        "name": trace.name,
        "span_kind": trace.span_kind,
        "start_time": iso_time(trace.start_time_ns),
        "end_time": iso_time(trace.end_time_ns),
        "latency_ms": trace.latency_ms,
        "span_count": trace.span_count,
        "error_count": trace.error_count,
        "total_tokens": trace.total_tokens,
        "cost": trace.cost,
        "status": trace.status,
        "input": trace.input,
        "output": trace.output,
        "tags": trace.tags,
        "metadata": trace.metadata,
    }


def turn_json(trace: TraceSummary) -> dict[str, Any]:
    return {
        "trace_id": trace.trace_id,
        "name": trace.name,
        "start_time": iso_time(trace.start_time_ns),
        "input": trace.input,
        "output": trace.output,
        "latency_ms": trace.latency_ms,
        "total_tokens": trace.total_tokens,
        "cost": trace.cost,
        "status": trace.status,
        "error_count": trace.error_count,
        "span_count": trace.span_count,
        **results_json(trace.evaluations),
        # The one rule for a failing turn (`base.turn_failed`): an error or a result that did
        # not pass; `error` and `failed_evaluations` say which.
        "failed": turn_failed(trace),
        "error": trace.error_count > 0,
        "failed_evaluations": sorted({result.name for result in failed_evaluations(trace)}),
        # The user's words and the answer, read out of the request and response (`input` and
        # `output` are the texts as stored).
        "input_text": user_text(trace.input),
        "output_text": answer_text(trace.output),
    }


def session_detail_json(detail: SessionDetail, idle_before_ns: int) -> dict[str, Any]:
    failing = detail.first_failing
    return {
        **session_json(detail.summary, idle_before_ns),
        # Results on the whole conversation (session evaluators, feedback on the session).
        "results": [evaluation_json(result) for result in detail.results],
        "turns": [turn_json(turn) for turn in detail.turns],
        "turns_offset": detail.first_turn_index,
        "next_cursor": detail.next_cursor,
        "previous_cursor": detail.previous_cursor,
        # A turn fails on a span error or on a result that did not pass (a low score or a
        # failing label); `reason` says which. `cursor` opens the page starting at it.
        # "Where it breaks": the first turn with an error, else the first with a failing result.
        "first_failing_turn": _failing_json(failing),
        "first_evaluation_failure": _failing_json(detail.first_evaluation_failure),
        "failing_turn_count": detail.failing_turn_count,
    }


def _failing_json(failing: FailingTurn | None) -> dict[str, Any] | None:
    if failing is None:
        return None
    return {
        "index": failing.index,
        "trace_id": failing.trace_id,
        "reason": failing.reason,
        "cursor": failing.cursor,
    }


def user_json(user: UserSummary) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "project": user.project,
        "session_count": user.session_count,
        "trace_count": user.trace_count,
        "total_tokens": user.total_tokens,
        "cost": user.cost,
        "error_count": user.error_count,
        "error_rate": user.error_rate,
        "first_seen": iso_time(user.first_seen_ns),
        "last_seen": iso_time(user.last_seen_ns),
        "evaluations": aggregates_json(user.evaluations),
    }


def user_detail_json(detail: UserDetail, idle_before_ns: int) -> dict[str, Any]:
    return {
        **user_json(detail.summary),
        "sessions": {
            "items": [session_json(session, idle_before_ns) for session in detail.sessions.items],
            "next_cursor": detail.sessions.next_cursor,
        },
    }


def span_json(span: SpanRecord) -> dict[str, Any]:
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "project": span.project,
        "start_time": iso_time(span.start_time_ns),
        "end_time": iso_time(span.end_time_ns),
        "duration_ms": span.duration_ms,
        "otel_kind": span.otel_kind,
        "span_kind": span.span_kind,
        "session_id": span.session_id,
        "user_id": span.user_id,
        "status": {"code": span.status_code, "message": span.status_message},
        "model": span.model,
        "prompt_tokens": span.prompt_tokens,
        "completion_tokens": span.completion_tokens,
        "total_tokens": span.total_tokens,
        "cost": span.cost,
        "input": span.input,
        "output": span.output,
        "metadata": span.metadata,
        "tags": span.tags,
        "attributes": span.attributes,
        "events": [{**event, "time": iso_time(event.get("time_ns"))} for event in span.events],
        "resource": span.resource,
    }


def trace_detail_head(detail: TraceDetail) -> dict[str, Any]:
    """What a trace's JSON holds before its "spans" (see trace_detail_json)."""
    return {**trace_json(detail.summary), **results_json(detail.summary.evaluations)}


def trace_detail_tail(detail: TraceDetail) -> dict[str, Any]:
    """What a trace's JSON holds after its "spans"."""
    return {"next_cursor": detail.next_cursor}


def trace_detail_json(detail: TraceDetail) -> dict[str, Any]:
    """A trace and a page of its spans; the API streams the same members (head, spans, tail)."""
    return {
        **trace_detail_head(detail),
        "spans": [span_json(span) for span in detail.spans],
        **trace_detail_tail(detail),
    }
