"""The rows the client hands back: dataclasses built from the API's JSON, times as aware
datetimes (UTC), numbers as numbers. The field types also give the DataFrames their dtypes
(frames.py)."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from datetime import datetime, timezone
from typing import Any, TypeVar, Union

R = TypeVar("R")


def parse_time(value: Any) -> datetime | None:
    """An API time (ISO 8601, ``Z`` for UTC) as an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """Each field's type with ``| None`` taken off: what a value is converted to."""
    hints = typing.get_type_hints(cls)
    resolved = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if typing.get_origin(hint) in (Union, types.UnionType):
            options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            hint = options[0] if len(options) == 1 else Any
        resolved[field.name] = hint
    return resolved


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if hint is datetime:
        return parse_time(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_json(hint, value)  # type: ignore[arg-type]
    if typing.get_origin(hint) is list and isinstance(value, list):
        (item,) = typing.get_args(hint)
        return [_convert(item, element) for element in value]
    return value


def from_json(cls: type[R], data: dict[str, Any]) -> R:
    """A record from an API object: fields by name (absent ones None, or empty for lists and
    dicts), converted by their types; members the record does not know are ignored."""
    adapt = getattr(cls, "adapt_json", None)
    if adapt is not None:
        data = adapt(data)
    values = {}
    for name, hint in field_types(typing.cast(type, cls)).items():
        value = data.get(name)
        if value is None and typing.get_origin(hint) in (list, dict):
            value = typing.get_origin(hint)()
        values[name] = _convert(hint, value)
    return cls(**values)


@dataclasses.dataclass(slots=True)
class Project:
    name: str
    span_count: int
    trace_count: int
    session_count: int
    user_count: int
    first_span_time: datetime | None
    last_span_time: datetime | None


@dataclasses.dataclass(slots=True)
class Evaluation:
    """One evaluation result (or an end user's feedback) on a span, a turn or a session."""

    id: str | None
    name: str
    score: float | None
    label: str | None
    explanation: str | None
    passed: bool | None
    source: str | None
    trace_id: str | None
    span_id: str | None
    session_id: str | None
    details: dict[str, Any]
    time: datetime | None


@dataclasses.dataclass(slots=True)
class EvaluationResult:
    """One stored evaluation result (or an end user's feedback), a row of `Client.evaluations()`:
    `level` says what it judges, "span", "trace" (a whole turn) or "session" (the whole
    conversation); `trace_id` and `span_id` are None where they do not apply. `session_id` and
    `user_id` are its trace's (or its session's), None when it has none."""

    level: str
    project: str
    trace_id: str | None
    span_id: str | None
    session_id: str | None
    user_id: str | None
    name: str
    source: str
    id: str | None  # a feedback's id
    score: float | None
    label: str | None
    explanation: str | None
    passed: bool | None
    time: datetime | None  # when it was recorded
    details: dict[str, Any]


@dataclasses.dataclass(slots=True)
class Session:
    session_id: str
    user_id: str | None
    project: str
    status: str | None
    trace_count: int
    first_input: str | None
    last_output: str | None
    start_time: datetime | None
    end_time: datetime | None
    duration_ms: float | None
    total_tokens: int | None
    cost: float | None
    error_count: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    tags: list[str]
    metadata: dict[str, Any]
    evaluations: dict[str, Any]  # name -> {"count", "mean_score", "pass_rate"}


@dataclasses.dataclass(slots=True)
class Turn:
    """One turn of a conversation (a trace of the session): `input` is what the user said."""

    trace_id: str
    name: str | None
    start_time: datetime | None
    input: str | None
    output: str | None
    latency_ms: float | None
    total_tokens: int | None
    cost: float | None
    status: str | None
    error_count: int
    span_count: int
    evaluations: list[Evaluation]
    evaluation_summary: dict[str, Any]


@dataclasses.dataclass(slots=True)
class SessionDetail(Session):
    """A session with all its turns, in time order, and the results on the whole conversation."""

    turns: list[Turn]
    results: list[Evaluation]


@dataclasses.dataclass(slots=True)
class User:
    user_id: str
    project: str
    session_count: int
    trace_count: int
    total_tokens: int | None
    cost: float | None
    error_count: int
    error_rate: float | None
    first_seen: datetime | None
    last_seen: datetime | None
    evaluations: dict[str, Any]


@dataclasses.dataclass(slots=True)
class Trace:
    trace_id: str
    project: str
    session_id: str | None
    user_id: str | None
    root_span_id: str | None
    name: str | None
    span_kind: str | None
    start_time: datetime | None
    end_time: datetime | None
    latency_ms: float | None
    span_count: int
    error_count: int
    total_tokens: int | None
    cost: float | None
    status: str | None
    input: str | None
    output: str | None
    tags: list[str]
    metadata: dict[str, Any]


@dataclasses.dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    project: str
    start_time: datetime | None
    end_time: datetime | None
    duration_ms: float | None
    otel_kind: str | None
    span_kind: str | None
    session_id: str | None
    user_id: str | None
    status_code: str | None
    status_message: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cost: float | None
    input: str | None
    output: str | None
    metadata: dict[str, Any]
    tags: list[str]
    attributes: dict[str, Any]
    events: list[Any]
    resource: dict[str, Any]

    @staticmethod
    def adapt_json(data: dict[str, Any]) -> dict[str, Any]:
        status = data.get("status") or {}
        return {**data, "status_code": status.get("code"), "status_message": status.get("message")}


@dataclasses.dataclass(slots=True)
class TraceDetail(Trace):
    """A trace with all its spans (in start order) and the results on them."""

    spans: list[Span]
    evaluations: list[Evaluation]
    evaluation_summary: dict[str, Any]


@dataclasses.dataclass(slots=True)
class EvaluationGroup:
    """Aggregates of one evaluation name over one session, user or project (`group_by`)."""

    group_by: str
    key: str | None  # the session or user id; None for a project
    project: str
    name: str
    count: int
    mean_score: float | None
    pass_rate: float | None
    worst: Evaluation | None

    @staticmethod
    def adapt_json(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "key": data.get(f"{data.get('group_by')}_id")}
