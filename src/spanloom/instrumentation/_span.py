"""The span of one provider call: started before the request, ended with the response or the error.

Every patched SDK method of every provider runs through `sync_wrapper` / `async_wrapper` (or
`traced_call` / `traced_call_async` for calls made later than they were asked for). Their
contract with the host: the call's arguments, return value and exception are never changed.
Whatever goes wrong on the tracing side (a builder meeting a shape it does not know, an
exporter raising) costs that call's telemetry and is logged once through `log_failure`.

The cost a call pays above a bare span is kept small, measured with
``benchmarks/instrumentation_overhead.py``:

- the span starts bare: samplers see its name and kind, and on_start processors could never
  see attributes written after start_span returns anyway. Every attribute, request and
  response side, is built once at the end and written in one pass (`write_attributes`), with
  the context ids last so that an attribute limit drops the oldest message attributes first;
- the hot path is one wrapper frame: the context is read and the span context attached through
  the context variable itself (`spanloom.sdk.context`'s fast path), not the public layers;
- a stream's request attributes are built when the stream is returned, before the caller's
  code can touch the request (say, append the answer to its ``messages`` list).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind as OTelSpanKind
from opentelemetry.trace import Status, StatusCode, Tracer
from opentelemetry.trace.propagation import _SPAN_KEY

from spanloom import semconv
from spanloom.instrumentation._messages import materialize
from spanloom.instrumentation._model_run import MODEL_RUN_KEY, ModelRun
from spanloom.instrumentation._raw import has_async_parse, hook_unread, is_raw, parses_now
from spanloom.instrumentation._streams import record_stream, wrap_stream
from spanloom.sdk._guard import log_failure
from spanloom.sdk._runtime import attach_fast, current_context, detach_fast
from spanloom.sdk.context import is_tracing_suppressed, span_attributes_from_context
from spanloom.sdk.mask import TraceConfig

_CLIENT = OTelSpanKind.CLIENT

RequestBuilder = Callable[[dict[str, Any], TraceConfig], dict[str, Any]]
ResponseBuilder = Callable[[Any, TraceConfig], dict[str, Any]]


class Operation:
    """What one patched SDK method records; built once, at instrument() time.

    `iterables` name the request arguments a caller may pass as one-shot iterators: they are
    turned into lists before the call, so the SDK and the span (built after it) both see them.
    """

    __slots__ = (
        "accumulator",
        "iterables",
        "name",
        "request",
        "response",
        "response_types",
        "static",
        "stream_types",
        "wraps_streams",
    )

    def __init__(
        self,
        name: str,
        kind: semconv.SpanKind,
        provider: str,
        request: RequestBuilder,
        response: ResponseBuilder,
        response_types: tuple[type, ...],
        stream_types: tuple[type, ...] = (),
        accumulator: Callable[[TraceConfig, dict[str, Any]], Any] | None = None,
        iterables: tuple[str, ...] = (),
        systems: tuple[str, str] | None = None,
        wraps_streams: bool = False,
    ) -> None:
        self.name = name
        self.request = request
        self.response = response
        self.response_types = response_types
        self.stream_types = stream_types
        self.accumulator = accumulator
        self.iterables = iterables
        # A plain generator takes no hooks: the caller gets it back wrapped (see finish_call).
        self.wraps_streams = wraps_streams
        # (llm.system, gen_ai.system) where they differ from the provider's name
        llm_system, gen_ai_system = systems or (provider, provider)
        self.static: dict[str, Any] = {
            semconv.OPENINFERENCE_SPAN_KIND: kind.value,
            semconv.GEN_AI_SPAN_KIND: kind.value,
            semconv.LLM_PROVIDER: provider,
            semconv.LLM_SYSTEM: llm_system,
            semconv.GEN_AI_SYSTEM: gen_ai_system,
        }


class Tracing:
    """An instrumentor's tracer and config; `active`: between instrument() and uninstrument()."""

    __slots__ = ("active", "config", "tracer")

    def __init__(self, tracer: Tracer, config: TraceConfig) -> None:
        self.tracer = tracer
        self.config = config
        self.active = True


_SCALARS = frozenset({str, int, float, bool})


def _plain(attributes: dict[str, Any]) -> bool:
    """Whether every value is a valid attribute value as is; lists become tuples in place."""
    if _SCALARS.issuperset(map(type, attributes.values())):  # the usual case, checked in C
        return True
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
    takes the public path, which applies the SDK's own rules (dropping the oldest first).
    """
    # The SDK span's BoundedAttributes, read through its private fields (see above).
    bounded: Any = getattr(span, "_attributes", None)
    store = getattr(bounded, "_dict", None)
    if (
        type(store) is dict
        and bounded.max_value_len is None
        and not bounded._immutable
        and (bounded.maxlen is None or len(store) + len(attributes) <= bounded.maxlen)
        and _plain(attributes)
    ):
        with bounded._lock:
            store.update(attributes)
        return
    span.set_attributes(attributes)


class Call:
    """One started span and what it needs to be ended. `end` is idempotent and never raises."""

    __slots__ = ("config", "context", "inputs", "model_run", "operation", "request", "span")

    def __init__(
        self,
        span: Any,
        operation: Operation,
        config: TraceConfig,
        request: dict[str, Any],
        context: Any,
        model_run: ModelRun | None = None,
    ) -> None:
        self.span = span
        self.operation = operation
        self.config = config
        self.request = request
        self.context = context
        self.inputs: dict[str, Any] | None = None  # request attributes, once built
        # Set when the span is a framework's model run: written to, never ended, here.
        self.model_run = model_run

    def build_inputs(self) -> dict[str, Any]:
        """The request's attributes, built once; a failing builder leaves them empty."""
        inputs = self.inputs
        if inputs is None:
            try:
                inputs = self.operation.request(self.request, self.config)
            except Exception:
                log_failure(f"{self.operation.name} request attributes")
                inputs = {}
            self.inputs = inputs
        return inputs

    def end(self, outputs: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        """Set every attribute in one write, record `error` if any, end the span. Success leaves
        the status UNSET, as the OpenTelemetry spec asks of instrumentations."""
        span = self.span
        if span is None:
            return
        self.span = None
        try:
            if span.is_recording():
                attributes = self.build_inputs()
                if outputs:
                    attributes.update(outputs)
                attributes.update(self.operation.static)
                # The context's ids go last: an attribute limit drops the oldest attributes first.
                attributes.update(span_attributes_from_context(self.context))
                config = self.config
                if not config.is_noop:
                    attributes = config.mask_attributes(attributes)
                write_attributes(span, attributes)
            model_run = self.model_run
            if model_run is not None:
                # The framework records the error and ends its span.
                model_run.recorded = model_run.recorded or bool(outputs)
                return
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        except Exception:
            log_failure("instrumentation span end")
            if self.model_run is not None:
                return
        try:
            span.end()
        except Exception:
            log_failure("instrumentation span.end")

    def fail(self, error: BaseException, outputs: dict[str, Any] | None = None) -> None:
        self.end(outputs, error)


def start_call(tracing: Tracing, operation: Operation, request: dict[str, Any], context: Any) -> Any:
    """Start the span of a call and make it current: (call, token), or None when anything fails."""
    try:
        if operation.iterables:
            materialize(request, operation.iterables)
        run = context.get(MODEL_RUN_KEY)
        if run is not None and run.claim():
            span = run.span  # a framework's model run (LangChain): its span records this call
        else:
            run = None
            span = tracing.tracer.start_span(operation.name, context, kind=_CLIENT)
        call = Call(span, operation, tracing.config, request, context, run)
        # What `set_span_in_context` + `attach` do, without their layers.
        return call, attach_fast(Context({**context, _SPAN_KEY: span}))
    except Exception:
        log_failure(f"{operation.name} span start")
        return None


def finish_call(call: Call, operation: Operation, result: Any) -> Any:
    """End `call` with what `result` says, or hand a stream result its recorder; returns `result`."""
    outputs = None
    try:
        result_type = type(result)
        if result_type in operation.response_types or isinstance(result, operation.response_types):
            outputs = operation.response(result, call.config)
        elif operation.stream_types and isinstance(result, operation.stream_types):
            call.build_inputs()  # now, before the caller's code runs and may change the request
            accumulator = operation.accumulator(call.config, call.request)  # type: ignore[misc]  # set for streaming operations
            if operation.wraps_streams:
                return wrap_stream(result, call, accumulator)
            if record_stream(result, call, accumulator):
                return result
        elif is_raw(result) and _record_raw(call, operation, result):
            return result
    except Exception:
        log_failure(f"{operation.name} response attributes")
    call.end(outputs)
    return result


def _settle(call: Call, operation: Operation) -> Callable[[Any], None]:
    """What a raw response's parsed value goes to: the plain call's end (a stream: its hooks)."""
    return lambda parsed: finish_call(call, operation, parsed)


def _record_raw(call: Call, operation: Operation, result: Any) -> bool:
    """Record a raw response (``with_raw_response``, ``with_streaming_response``): True when
    its span is taken care of, False to end it now with the request side only."""
    call.build_inputs()  # now, before the caller's code runs and may change the request
    if not parses_now(call.request):
        return hook_unread(result, _settle(call, operation), call.fail, call.end)
    if has_async_parse(result):
        return False  # only in a sync wrapper, which never gets one; see `finish_call_async`
    try:
        parsed = result.parse()  # cached on the response: the caller's parse() returns it
    except Exception as error:
        call.fail(error)
        return True
    finish_call(call, operation, parsed)
    return True


async def finish_call_async(call: Call, operation: Operation, result: Any) -> Any:
    """`finish_call` for an async wrapper: a raw response whose ``parse`` is a coroutine is
    parsed here, when parsing needs no I/O."""
    if (
        type(result) not in operation.response_types
        and is_raw(result)
        and has_async_parse(result)
        and parses_now(call.request)
    ):
        try:
            call.build_inputs()
            parsed = await result.parse()
        except Exception as error:
            call.fail(error)
            return result
        finish_call(call, operation, parsed)
        return result
    return finish_call(call, operation, result)


def sync_wrapper(tracing: Tracing, operation: Operation, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The function installed in place of the SDK's sync method `fn`: one frame per call."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not tracing.active:
            return fn(*args, **kwargs)
        context = current_context()
        if is_tracing_suppressed(context):
            return fn(*args, **kwargs)
        started = start_call(tracing, operation, kwargs, context)
        if started is None:
            return fn(*args, **kwargs)
        call, token = started
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            detach_fast(token)
            call.fail(error)
            raise
        detach_fast(token)
        return finish_call(call, operation, result)

    return wrapper


def async_wrapper(
    tracing: Tracing, operation: Operation, fn: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """The coroutine function installed in place of the SDK's async method `fn`."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not tracing.active:
            return await fn(*args, **kwargs)
        context = current_context()
        if is_tracing_suppressed(context):
            return await fn(*args, **kwargs)
        started = start_call(tracing, operation, kwargs, context)
        if started is None:
            return await fn(*args, **kwargs)
        call, token = started
        try:
            result = await fn(*args, **kwargs)
        except BaseException as error:
            detach_fast(token)
            call.fail(error)
            raise
        detach_fast(token)
        return await finish_call_async(call, operation, result)

    return wrapper


def traced_call(
    tracing: Tracing, operation: Operation, fn: Callable[[], Any], request: dict[str, Any], context: Context
) -> Any:
    """`fn()` inside the operation's span, recording `request`, in `context`: for a call made
    later than it was asked for (Anthropic's ``messages.stream`` sends at ``__enter__``)."""
    if not tracing.active or is_tracing_suppressed(context):
        return fn()
    started = start_call(tracing, operation, request, context)
    if started is None:
        return fn()
    call, token = started
    try:
        result = fn()
    except BaseException as error:
        detach_fast(token)
        call.fail(error)
        raise
    detach_fast(token)
    return finish_call(call, operation, result)


async def traced_call_async(
    tracing: Tracing,
    operation: Operation,
    fn: Callable[[], Awaitable[Any]],
    request: dict[str, Any],
    context: Context,
) -> Any:
    """`await fn()` as `traced_call` runs `fn()`."""
    if not tracing.active or is_tracing_suppressed(context):
        return await fn()
    started = start_call(tracing, operation, request, context)
    if started is None:
        return await fn()
    call, token = started
    try:
        result = await fn()
    except BaseException as error:
        detach_fast(token)
        call.fail(error)
        raise
    detach_fast(token)
    return finish_call(call, operation, result)
