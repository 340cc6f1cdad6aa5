"""Normalization: decoded OTLP spans to `SpanRecord`s, reading every common attribute alias.

A pure function (no I/O), so it is tested alone. The aliases follow DESIGN.md's table: spans
written by OpenInference, traceAI, OpenLLMetry, Langfuse or plain GenAI instrumentation group
by session and user the same way as spanloom's own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spanloom import semconv
from spanloom.server.ingest.attributes import key_values
from spanloom.server.ingest.limits import Cuts, IngestLimits, TooManySpansError, truncate_text
from spanloom.server.ingest.messages import MESSAGE_PREFIXES, group_by_prefix, input_text, output_text
from spanloom.server.json_text import parse_json
from spanloom.server.metrics.ingest import DUPLICATE_SPAN, INVALID_ID
from spanloom.server.pricing import PriceTable, TokenCounts
from spanloom.server.store.base import SpanRecord, StatusCode

DEFAULT_PROJECT = "default"
PROJECT_KEYS = (
    semconv.PROJECT_NAME,
    semconv.OPENINFERENCE_PROJECT_NAME,
    semconv.PLAIN_PROJECT_NAME,
    semconv.SERVICE_NAME,
)
SESSION_KEYS = (
    semconv.SESSION_ID,
    semconv.GEN_AI_CONVERSATION_ID,
    semconv.LANGFUSE_SESSION_ID,
    semconv.PLAIN_SESSION_ID,
)
USER_KEYS = (semconv.USER_ID, semconv.ENDUSER_ID, semconv.LANGFUSE_USER_ID, semconv.PLAIN_USER_ID)
SPAN_KIND_KEYS = (semconv.OPENINFERENCE_SPAN_KIND, semconv.GEN_AI_SPAN_KIND, semconv.FI_SPAN_KIND)
MODEL_KEYS = (
    semconv.LLM_MODEL_NAME,
    semconv.GEN_AI_RESPONSE_MODEL,
    semconv.GEN_AI_REQUEST_MODEL,
    semconv.EMBEDDING_MODEL_NAME,
)
PROMPT_TOKEN_KEYS = (
    semconv.LLM_TOKEN_COUNT_PROMPT,
    semconv.GEN_AI_USAGE_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_PROMPT_TOKENS,
)
COMPLETION_TOKEN_KEYS = (
    semconv.LLM_TOKEN_COUNT_COMPLETION,
    semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    semconv.GEN_AI_USAGE_COMPLETION_TOKENS,
)
# Parts of the prompt and completion counts that some providers price apart.
CACHE_READ_KEYS = (semconv.LLM_TOKEN_COUNT_PROMPT_CACHE_READ, semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
CACHE_WRITE_KEYS = (
    semconv.LLM_TOKEN_COUNT_PROMPT_CACHE_WRITE,
    semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
)
REASONING_KEYS = (
    semconv.LLM_TOKEN_COUNT_COMPLETION_REASONING,
    semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
# Who served the call, which some models' prices depend on (Azure's, Bedrock's).
PROVIDER_KEYS = (semconv.LLM_PROVIDER, semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_SYSTEM)
# gen_ai.operation.name values to OpenInference span kinds.
_OPERATION_KINDS = {
    "chat": "LLM",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "embeddings": "EMBEDDING",
    "execute_tool": "TOOL",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
}
_KNOWN_KINDS = {kind.value for kind in semconv.SpanKind}
_OTEL_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS_CODES: dict[int, StatusCode] = {0: "UNSET", 1: "OK", 2: "ERROR"}
# The key prefixes normalize_span reads: found in one pass over a span's keys.
_LANGFUSE_METADATA = semconv.LANGFUSE_TRACE_METADATA_PREFIX
_SCANNED_PREFIXES = (*MESSAGE_PREFIXES, _LANGFUSE_METADATA)
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
# Ids longer than this are not ids (they come from clients).
MAX_ID_LENGTH = 256
INT64_MAX = 2**63 - 1
# The most tokens one count of one span may say: no model call reads or writes a billion tokens,
# and a bound keeps costs and every sum of them within 64-bit integers (SECURITY.md).
MAX_TOKENS = 1_000_000_000


@dataclass(slots=True)
class NormalizedBatch:
    spans: list[SpanRecord]
    rejected: int
    error_message: str  # why spans were rejected, for partial_success; "" when none were
    rejected_by: dict[str, int] = field(default_factory=dict)  # reason code -> spans, for /metrics


def first_string(attributes: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first non-empty string (or number, as text) under any of `keys`.

    A NUL character becomes U+FFFD: SQLite's JSON functions, through which the store looks ids
    up in bulk, end a string at NUL, so an id holding one could never be found again.
    """
    for key in keys:
        value = attributes.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            value = value.strip()
            if value and len(value) <= MAX_ID_LENGTH:
                return value.replace("\x00", "\ufffd") if "\x00" in value else value
        elif isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def _int64(value: int) -> int:
    """Clamped to what a store's integer column holds: fixed64 times and string counts can exceed it."""
    return max(min(value, INT64_MAX), -INT64_MAX)


def first_int(attributes: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = attributes.get(key)
        # Most aliases are absent: skip them before the type checks (read for every span).
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if isinstance(value, (int, float)):
            return _int64(int(value))
        if isinstance(value, str) and value.isdecimal() and len(value) <= 30:
            return _int64(int(value))
    return None


def token_count(attributes: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """A token count from 0 to MAX_TOKENS (a larger one is clamped); a negative one is no count."""
    count = first_int(attributes, keys)
    if count is None or count < 0:
        return None
    return min(count, MAX_TOKENS)


def cost_of(
    attributes: dict[str, Any],
    prices: PriceTable,
    model: str | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    start_ns: int,
) -> float | None:
    """USD for an LLM call, priced as of its start; None without a model, tokens or a price."""
    if not model or (prompt_tokens is None and completion_tokens is None):
        return None
    tokens = TokenCounts(
        prompt_tokens or 0,
        completion_tokens or 0,
        token_count(attributes, CACHE_READ_KEYS) or 0,
        token_count(attributes, CACHE_WRITE_KEYS) or 0,
        token_count(attributes, REASONING_KEYS) or 0,
    )
    return prices.cost_of(model, tokens, first_string(attributes, PROVIDER_KEYS), start_ns)


def span_kind_of(attributes: dict[str, Any]) -> str:
    kind = first_string(attributes, SPAN_KIND_KEYS)
    if kind:
        kind = kind.upper()
        return kind if kind in _KNOWN_KINDS else "UNKNOWN"
    operation = attributes.get(semconv.GEN_AI_OPERATION_NAME)
    if isinstance(operation, str) and operation in _OPERATION_KINDS:
        return _OPERATION_KINDS[operation]
    # A span that names the model it called is an LLM call, whoever wrote it.
    if attributes.get(semconv.LLM_MODEL_NAME) or attributes.get(semconv.GEN_AI_REQUEST_MODEL):
        return "LLM"
    return "UNKNOWN"


def metadata_of(attributes: dict[str, Any], langfuse_keys: Iterable[str] | None = None) -> dict[str, Any]:
    """`langfuse_keys`: the keys under langfuse.trace.metadata., when the caller has them already."""
    metadata: dict[str, Any] = {}
    raw = attributes.get(semconv.METADATA)
    if isinstance(raw, str):
        try:
            parsed = parse_json(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            metadata.update(parsed)
    elif isinstance(raw, dict):
        metadata.update(raw)
    prefix = _LANGFUSE_METADATA
    if langfuse_keys is None:
        langfuse_keys = [key for key in attributes if key.startswith(prefix)]
    for key in langfuse_keys:
        metadata.setdefault(key[len(prefix) :], attributes[key])
    return metadata


def tags_of(attributes: dict[str, Any]) -> list[str]:
    tags: list[str] = []
    for key in (semconv.TAG_TAGS, semconv.LANGFUSE_TRACE_TAGS):
        value = attributes.get(key)
        if isinstance(value, str):
            try:
                value = parse_json(value)
            except ValueError:
                value = [value]
        if isinstance(value, list):
            for tag in value:
                if isinstance(tag, str) and tag:
                    tag = tag.replace(
                        "\x00", "\ufffd"
                    )  # as ids (see first_string): tags are filtered by JSON
                    if tag not in tags:
                        tags.append(tag)
    return tags


def project_of(resource: dict[str, Any]) -> str:
    for key in PROJECT_KEYS:
        name = first_string(resource, (key,))
        # The OpenTelemetry SDK fills service.name with "unknown_service[:process]" when the app
        # set none: that names no project.
        if name and not name.startswith("unknown_service"):
            return name
    return DEFAULT_PROJECT


def normalize_span(
    span: Any,
    resource: dict[str, Any],
    project: str,
    prices: PriceTable,
    limits: IngestLimits = IngestLimits(),
) -> SpanRecord:
    """One protobuf Span to a record, cut to `limits`. The caller has checked its ids."""
    cuts = Cuts()
    max_bytes = limits.max_attribute_value_bytes
    attributes = key_values(span.attributes, max_bytes, limits.max_attributes_per_span, cuts)
    events = [
        {
            "name": truncate_text(event.name, max_bytes, cuts),
            "time_ns": _int64(event.time_unix_nano),
            "attributes": key_values(event.attributes, max_bytes, limits.max_attributes_per_span, cuts),
        }
        for event in span.events
    ]
    name = truncate_text(span.name, max_bytes, cuts)
    status_message = truncate_text(span.status.message, max_bytes, cuts)
    cuts.mark(attributes)
    grouped = group_by_prefix(attributes, _SCANNED_PREFIXES)
    model = first_string(attributes, MODEL_KEYS)
    prompt_tokens = token_count(attributes, PROMPT_TOKEN_KEYS)
    completion_tokens = token_count(attributes, COMPLETION_TOKEN_KEYS)
    total_tokens = token_count(attributes, (semconv.LLM_TOKEN_COUNT_TOTAL,))
    if total_tokens is None and (prompt_tokens is not None or completion_tokens is not None):
        total_tokens = (prompt_tokens or 0) + (completion_tokens or 0)
    start, end = _int64(span.start_time_unix_nano), _int64(span.end_time_unix_nano)
    return SpanRecord(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() if len(span.parent_span_id) == 8 else None,
        name=name,
        project=project,
        start_time_ns=start,
        end_time_ns=max(end, start),
        otel_kind=_OTEL_KINDS.get(span.kind, "UNSPECIFIED"),
        span_kind=span_kind_of(attributes),
        # A span's own attributes win; ids on the resource (some SDKs put them there) come next.
        session_id=first_string(attributes, SESSION_KEYS) or first_string(resource, SESSION_KEYS),
        user_id=first_string(attributes, USER_KEYS) or first_string(resource, USER_KEYS),
        status_code=_STATUS_CODES.get(span.status.code, "UNSET"),
        status_message=status_message,
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=total_tokens,
        cost=cost_of(attributes, prices, model, prompt_tokens, completion_tokens, start),
        input=input_text(attributes, grouped),
        output=output_text(attributes, grouped),
        metadata=metadata_of(attributes, grouped.get(_LANGFUSE_METADATA, ())),
        tags=tags_of(attributes),
        attributes=attributes,
        events=events,
        resource=resource,
    )


def _id_problem(span: Any) -> str | None:
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE_ID:
        return "trace_id must be 16 non-zero bytes"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN_ID:
        return "span_id must be 8 non-zero bytes"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "parent_span_id must be empty or 8 bytes"
    return None


def count_spans(request: Any) -> int:
    return sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)


def normalize_request(
    request: Any, prices: PriceTable, limits: IngestLimits = IngestLimits()
) -> NormalizedBatch:
    """Every span of an ExportTraceServiceRequest; spans with invalid ids are counted, not kept,
    and so is a second span with the same (trace id, span id) in one request (the first wins).

    Raises TooManySpansError when the request holds more than `limits.max_spans_per_request`.
    """
    total = count_spans(request)
    if total > limits.max_spans_per_request:
        raise TooManySpansError(
            f"{total} spans in one request; the limit is {limits.max_spans_per_request} "
            "(SPANLOOM_MAX_SPANS_PER_REQUEST): send smaller batches"
        )
    records: list[SpanRecord] = []
    rejected = 0
    rejected_by: dict[str, int] = {}
    problems: list[str] = []
    seen: set[tuple[bytes, bytes]] = set()
    for resource_spans in request.resource_spans:
        resource = key_values(
            resource_spans.resource.attributes,
            limits.max_attribute_value_bytes,
            limits.max_attributes_per_span,
        )
        project = project_of(resource)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                problem, reason = _id_problem(span), INVALID_ID
                if problem is None and (span.trace_id, span.span_id) in seen:
                    problem, reason = "a span id appeared twice in one request", DUPLICATE_SPAN
                if problem is not None:
                    rejected += 1
                    rejected_by[reason] = rejected_by.get(reason, 0) + 1
                    if problem not in problems:
                        problems.append(problem)
                    continue
                seen.add((span.trace_id, span.span_id))
                records.append(normalize_span(span, resource, project, prices, limits))
    message = f"{rejected} span(s) rejected: {'; '.join(problems)}" if rejected else ""
    return NormalizedBatch(records, rejected, message, rejected_by)
