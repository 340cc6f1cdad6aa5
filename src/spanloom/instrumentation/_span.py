"""The span of one provider call: started from the request, ended with the response or the error.

Every patched SDK method of every provider runs through `traced_call` / `traced_call_async`.
Their contract with the host: the call's arguments, return value and exception are never
changed. Whatever goes wrong on the tracing side (a builder meeting a shape it does not know,
an exporter raising) costs that call's telemetry and is logged once through `log_failure`.

Costs are kept to what the span needs: one attribute dict built at start and one at the end,
each written under one lock (`write_attributes`), masking skipped when the TraceConfig is a
no-op, the context read once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry.context import Context, attach, detach, get_current
from opentelemetry.trace import SpanKind as OTelSpanKind
from opentelemetry.trace import Status, StatusCode, Tracer, set_span_in_context

from spanloom import semconv
from spanloom.instrumentation._streams import record_stream
from spanloom.sdk._guard import log_failure
from spanloom.sdk.context import get_attributes_from_context, is_tracing_suppressed
from spanloom.sdk.mask import TraceConfig

# OpenTelemetry's default span attribute limit. Past it the SDK drops the oldest attributes, so
# a long conversation would push out the ids set first; `Call.end` re-sets them last instead.
DEFAULT_ATTRIBUTE_LIMIT = 128
_CLIENT = OTelSpanKind.CLIENT

RequestBuilder = Callable[[dict[str, Any], TraceConfig], dict[str, Any]]
ResponseBuilder = Callable[[Any, TraceConfig], dict[str, Any]]


class Operation:
    """What one patched SDK method records; built once, at instrument() time."""

    __slots__ = ("accumulator", "name", "request", "response", "response_types", "static", "stream_types")

    def __init__(
        self,
        name: str,
        kind: semconv.SpanKind,
        provider: str,
        request: RequestBuilder,
        response: ResponseBuilder,
        response_types: tuple[type, ...],
        stream_types: tuple[type, ...] = (),
        accumulator: Callable[[TraceConfig], Any] | None = None,
    ) -> None:
        self.name = name
        self.request = request
        self.response = response
        self.response_types = response_types
        self.stream_types = stream_types
        self.accumulator = accumulator
        self.static: dict[str, Any] = {
            semconv.OPENINFERENCE_SPAN_KIND: kind.value,
            semconv.GEN_AI_SPAN_KIND: kind.value,
            semconv.LLM_PROVIDER: provider,
            semconv.LLM_SYSTEM: provider,
            semconv.GEN_AI_SYSTEM: provider,
        }


class Tracing:
    """An instrumentor's tracer and config; `active` turns false at uninstrument()."""

    __slots__ = ("active", "config", "limit", "tracer")

    def __init__(self, tracer: Tracer, config: TraceConfig, limit: int = DEFAULT_ATTRIBUTE_LIMIT) -> None:
        self.tracer = tracer
        self.config = config
        self.limit = limit
        self.active = True


_SCALARS = frozenset({str, int, float, bool})


def _plain(attributes: dict[str, Any]) -> bool:
    """Whether every value is a valid attribute value as is; lists become tuples in place."""
    for key, value in attributes.items():
        kind = type(value)
        if kind in _SCALARS:
            continue
        if (kind is list or kind is tuple) and all(type(item) in _SCALARS for item in value):
            if kind is list:
                attributes[key] = tuple(value)
            continue
        return False
    return True


def write_attributes(span: Any, attributes: dict[str, Any]) -> None:
    """Set `attributes` on a span this module started and has not ended.

    The public ``set_attributes`` re-validates every value one by one, the largest cost of a
    span with a few dozen attributes. The values built here are plain strings, numbers and
    tuples, checked by `_plain` in one cheap pass, so they go straight into the SDK's attribute
    dict under its lock, as `SessionSpanProcessor` does at span start. Anything unusual (a
    value length limit, a table about to overflow, another SDK's span, an unexpected value)
    takes the public path, which applies the SDK's own rules.
    """
    bounded = getattr(span, "_attributes", None)
    store = getattr(bounded, "_dict", None)
    if (
        type(store) is dict
        and bounded.max_value_len is None  # type: ignore[union-attr]
        and not bounded._immutable  # type: ignore[union-attr]
        and (bounded.maxlen is None or len(store) + len(attributes) <= bounded.maxlen)  # type: ignore[union-attr]
        and _plain(attributes)
    ):
        with bounded._lock:  # type: ignore[union-attr]
            store.update(attributes)
        return
    span.set_attributes(attributes)


class Call:
    """One started span. `end` and `fail` are idempotent and never raise."""

    __slots__ = ("config", "count", "keep", "limit", "span")

    def __init__(self, span: Any, config: TraceConfig, count: int, keep: dict[str, Any], limit: int) -> None:
        self.span = span
        self.config = config
        self.count = count  # attributes set at start
        self.keep = keep  # span kind, provider and context ids: re-set last when the limit is near
        self.limit = limit

    def end(self, attributes: dict[str, Any] | None, error: BaseException | None = None) -> None:
        """Set `attributes`, record `error` if any, end the span. Success leaves the status
        UNSET, as the OpenTelemetry spec asks of instrumentations."""
        span = self.span
        if span is None:
            return
        self.span = None
        try:
            if attributes:
                config = self.config
                if not config.is_noop:
                    attributes = config.mask_attributes(attributes)
                if self.count + len(attributes) > self.limit:
                    attributes.update(self.keep)
                write_attributes(span, attributes)
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        except Exception:
            log_failure("instrumentation span end")
        try:
            span.end()
        except Exception:
            log_failure("instrumentation span.end")

    def fail(self, error: BaseException, attributes: dict[str, Any] | None = None) -> None:
        self.end(attributes, error)


def start_call(tracing: Tracing, operation: Operation, request: dict[str, Any], context: Any) -> Call | None:
    """Start the span of a call with its request attributes; None when anything fails."""
    try:
        config = tracing.config
        attributes = operation.request(request, config)
        keep = operation.static.copy()
        for key, value in get_attributes_from_context(context):
            keep[key] = value
        # The ids go last: an attribute limit drops the oldest attributes first.
        attributes.update(keep)
        if not config.is_noop:
            attributes = config.mask_attributes(attributes)
        span = tracing.tracer.start_span(operation.name, context, kind=_CLIENT)
        if span.is_recording():
            write_attributes(span, attributes)
        return Call(span, config, len(attributes), keep, tracing.limit)
    except Exception:
        log_failure(f"{operation.name} span start")
        return None


def finish_call(call: Call, operation: Operation, result: Any) -> Any:
    """End `call` with what `result` says, or hand a stream result its recorder; returns `result`."""
    attributes = None
    try:
        result_type = type(result)
        if result_type in operation.response_types or isinstance(result, operation.response_types):
            attributes = operation.response(result, call.config)
        elif (
            operation.stream_types
            and isinstance(result, operation.stream_types)
            and record_stream(result, call, operation.accumulator(call.config))  # type: ignore[misc]
        ):
            return result
        # Anything else is a raw-response wrapper (`with_raw_response`): its body is the caller's
        # to read, so the span keeps the request side only.
    except Exception:
        log_failure(f"{operation.name} response attributes")
    call.end(attributes)
    return result


def traced_call(
    tracing: Tracing,
    operation: Operation,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    request: dict[str, Any] | None = None,
    context: Context | None = None,
) -> Any:
    """`fn(*args, **kwargs)` inside the operation's span.

    `request` (default `kwargs`) is what the span records; `context` (default the current one)
    is the context the call belongs to, for calls made later than they were asked for.
    """
    if not tracing.active:
        return fn(*args, **kwargs)
    if context is None:
        context = get_current()
    if is_tracing_suppressed(context):
        return fn(*args, **kwargs)
    call = start_call(tracing, operation, kwargs if request is None else request, context)
    if call is None:
        return fn(*args, **kwargs)
    token = attach(set_span_in_context(call.span, context))
    try:
        result = fn(*args, **kwargs)
    except BaseException as error:
        call.fail(error)
        raise
    finally:
        detach(token)
    return finish_call(call, operation, result)


async def traced_call_async(
    tracing: Tracing,
    operation: Operation,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    request: dict[str, Any] | None = None,
    context: Context | None = None,
) -> Any:
    """`await fn(*args, **kwargs)` inside the operation's span; arguments as for `traced_call`."""
    if not tracing.active:
        return await fn(*args, **kwargs)
    if context is None:
        context = get_current()
    if is_tracing_suppressed(context):
        return await fn(*args, **kwargs)
    call = start_call(tracing, operation, kwargs if request is None else request, context)
    if call is None:
        return await fn(*args, **kwargs)
    token = attach(set_span_in_context(call.span, context))
    try:
        result = await fn(*args, **kwargs)
    except BaseException as error:
        call.fail(error)
        raise
    finally:
        detach(token)
    return finish_call(call, operation, result)
