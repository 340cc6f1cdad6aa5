"""A tracer for your own code: ``@tracer.chain``, ``@tracer.agent``, ``@tracer.tool``, ``@tracer.llm``.

Each decorator works bare or with arguments, on functions, coroutines, generators and async
generators. The span records its kind (``openinference.span.kind`` and ``gen_ai.span.kind``),
the bound arguments as ``input.value``, the result as ``output.value`` (a generator's items,
joined when they are text), the context attributes (session, user...) and exceptions with
status ERROR; TraceConfig masks what it says before anything is set.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, overload

from opentelemetry import trace as trace_api
from opentelemetry.context import Context, attach, detach
from opentelemetry.trace import Link, Span, Status, StatusCode, TracerProvider
from opentelemetry.trace import SpanKind as OTelSpanKind

from spanloom import semconv
from spanloom.sdk._guard import log_failure
from spanloom.sdk._text import clean_text, dumps
from spanloom.sdk._validate import reject
from spanloom.sdk.context import is_tracing_suppressed, span_attributes_from_context
from spanloom.sdk.mask import TraceConfig
from spanloom.sdk.register import config_of
from spanloom.semconv import SpanKind

_F = TypeVar("_F", bound=Callable[..., Any])
# A generator's output keeps at most this many items.
MAX_RECORDED_ITEMS = 1000
_JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}
# Annotations left as strings (``from __future__ import annotations``) that could not be evaluated.
_JSON_TYPES.update({python_type.__name__: json_type for python_type, json_type in list(_JSON_TYPES.items())})


def _span_kind_value(*given: object) -> str:
    """The span kind's attribute value from the first keyword given: a `SpanKind`, another
    library's enum of the same names, or a string in either case ("chain", "CHAIN")."""
    for kind in given:
        if kind is None:
            continue
        text = getattr(kind, "value", kind)
        if isinstance(text, str) and text.upper() in _SPAN_KINDS:
            return text.upper()
        reject(f"span kind must be one of {sorted(_SPAN_KINDS)}, got {kind!r:.80}", stacklevel=4)
    return SpanKind.CHAIN.value


_SPAN_KINDS = frozenset(kind.value for kind in SpanKind)


def _value_and_mime(value: Any) -> tuple[str, str]:
    if isinstance(value, str):
        return clean_text(value), semconv.MIME_TEXT
    return dumps(value), semconv.MIME_JSON


def _tool_parameters(signature: inspect.Signature) -> dict[str, Any]:
    """A JSON schema for a tool's parameters, from its signature's annotations."""
    properties: dict[str, Any] = {}
    required = []
    for name, parameter in signature.parameters.items():
        if name in ("self", "cls") or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = parameter.annotation
        json_type = _JSON_TYPES.get(getattr(annotation, "__origin__", annotation))
        properties[name] = {"type": json_type} if json_type else {}
        if parameter.default is parameter.empty:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required}


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True)
    except (NameError, SyntaxError, TypeError):
        return inspect.signature(fn)


class _SpanSpec:
    """What one decorated function records, computed once at decoration."""

    __slots__ = ("attributes", "kind", "name", "signature")

    def __init__(self, fn: Callable[..., Any], kind: SpanKind, name: str | None, attributes: dict[str, Any]):
        self.name: str = name or str(getattr(fn, "__name__", "call"))
        self.kind = kind
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self.signature = None
        self.attributes = {
            semconv.OPENINFERENCE_SPAN_KIND: kind.value,
            semconv.GEN_AI_SPAN_KIND: kind.value,
            **attributes,
        }

    def input_value(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.signature is None:
            return {"args": list(args), "kwargs": kwargs}
        bound = self.signature.bind_partial(*args, **kwargs)
        arguments = {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}
        if len(arguments) == 1:
            (only,) = arguments.values()
            if isinstance(only, str):
                return only
        return arguments


class SpanloomTracer:
    """Wraps an OpenTelemetry tracer with span-kind decorators. Get one with `get_tracer`."""

    def __init__(self, tracer: trace_api.Tracer, config: TraceConfig | None = None) -> None:
        self._tracer = tracer
        self.config = config or TraceConfig()

    # --- hand-written spans ---
    @contextlib.contextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: OTelSpanKind = OTelSpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
        *,
        span_kind: SpanKind | str | None = None,
        openinference_span_kind: SpanKind | str | None = None,
        fi_span_kind: SpanKind | str | None = None,
    ) -> Iterator[Span]:
        """OpenTelemetry's, plus the span kind (CHAIN unless given) and the context attributes;
        masked by config.

        The kind may be given as `span_kind`, or under OpenInference's and traceAI's names for
        it (`openinference_span_kind`, `fi_span_kind`), as a `SpanKind`, their enums, or a
        string in either case.
        """
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            span_kind=span_kind,
            openinference_span_kind=openinference_span_kind,
            fi_span_kind=fi_span_kind,
        )
        with trace_api.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: OTelSpanKind = OTelSpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        *,
        span_kind: SpanKind | str | None = None,
        openinference_span_kind: SpanKind | str | None = None,
        fi_span_kind: SpanKind | str | None = None,
    ) -> Span:
        """OpenTelemetry's start_span, with the span kind and context attributes of
        `start_as_current_span` (the span is not made current)."""
        value = _span_kind_value(span_kind, openinference_span_kind, fi_span_kind)
        all_attributes = {
            semconv.OPENINFERENCE_SPAN_KIND: value,
            semconv.GEN_AI_SPAN_KIND: value,
            **span_attributes_from_context(),
            **(attributes or {}),
        }
        return self._tracer.start_span(
            name,
            context,
            kind,
            self.config.mask_attributes(all_attributes),
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )

    # --- decorators ---
    @overload
    def chain(self, fn: _F) -> _F: ...
    @overload
    def chain(self, fn: None = None, *, name: str | None = None) -> Callable[[_F], _F]: ...
    def chain(self, fn: Any = None, *, name: str | None = None) -> Any:
        """Trace a step of your pipeline as a CHAIN span."""
        return self._decorator(fn, SpanKind.CHAIN, name, {})

    @overload
    def agent(self, fn: _F) -> _F: ...
    @overload
    def agent(self, fn: None = None, *, name: str | None = None) -> Callable[[_F], _F]: ...
    def agent(self, fn: Any = None, *, name: str | None = None) -> Any:
        """Trace an agent run as an AGENT span."""
        return self._decorator(fn, SpanKind.AGENT, name, {})

    @overload
    def llm(self, fn: _F) -> _F: ...
    @overload
    def llm(self, fn: None = None, *, name: str | None = None) -> Callable[[_F], _F]: ...
    def llm(self, fn: Any = None, *, name: str | None = None) -> Any:
        """Trace a call to a model you call yourself as an LLM span."""
        return self._decorator(fn, SpanKind.LLM, name, {})

    @overload
    def tool(self, fn: _F) -> _F: ...
    @overload
    def tool(
        self, fn: None = None, *, name: str | None = None, description: str | None = None
    ) -> Callable[[_F], _F]: ...
    def tool(self, fn: Any = None, *, name: str | None = None, description: str | None = None) -> Any:
        """Trace a tool as a TOOL span with its name, description and parameter schema."""

        def decorate(target: _F) -> _F:
            tool_name = name or getattr(target, "__name__", "tool")
            attributes: dict[str, Any] = {semconv.TOOL_NAME: tool_name}
            doc = description or inspect.getdoc(target)
            if doc:
                attributes[semconv.TOOL_DESCRIPTION] = doc
            try:
                attributes[semconv.TOOL_PARAMETERS] = dumps(_tool_parameters(_signature(target)))
            except (TypeError, ValueError):
                pass
            return self._decorator(target, SpanKind.TOOL, tool_name, attributes)

        return decorate(fn) if fn is not None else decorate

    def _decorator(self, fn: Any, kind: SpanKind, name: str | None, attributes: dict[str, Any]) -> Any:
        def decorate(target: _F) -> _F:
            spec = _SpanSpec(target, kind, name, attributes)
            if inspect.isasyncgenfunction(target):
                return self._wrap_async_generator(target, spec)  # type: ignore[return-value]  # same signature as the target
            if inspect.isgeneratorfunction(target):
                return self._wrap_generator(target, spec)  # type: ignore[return-value]  # same signature as the target
            if inspect.iscoroutinefunction(target):
                return self._wrap_coroutine(target, spec)  # type: ignore[return-value]  # same signature as the target
            return self._wrap_function(target, spec)  # type: ignore[return-value]  # same signature as the target

        return decorate(fn) if fn is not None else decorate

    # --- the span around one call ---
    def _begin(self, spec: _SpanSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Span | None:
        """Start the call's span, or None when tracing is suppressed or anything fails."""
        if is_tracing_suppressed():
            return None
        try:
            attributes = dict(spec.attributes)
            attributes.update(span_attributes_from_context())
            value, mime = _value_and_mime(spec.input_value(args, kwargs))
            attributes[semconv.INPUT_VALUE] = value
            attributes[semconv.INPUT_MIME_TYPE] = mime
            return self._tracer.start_span(spec.name, attributes=self.config.mask_attributes(attributes))
        except Exception:
            log_failure(f"tracer span start ({spec.kind.value})")
            return None

    def _succeed(self, span: Span, result: Any) -> None:
        try:
            value, mime = _value_and_mime(result)
            span.set_attributes(
                self.config.mask_attributes({semconv.OUTPUT_VALUE: value, semconv.OUTPUT_MIME_TYPE: mime})
            )
            span.set_status(Status(StatusCode.OK))
        except Exception:
            log_failure("tracer output")

    @staticmethod
    def _fail(span: Span, error: BaseException) -> None:
        try:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        except Exception:
            log_failure("tracer error")

    def _succeed_items(self, span: Span, items: list[Any]) -> None:
        if items and all(isinstance(item, str) for item in items):
            self._succeed(span, "".join(items))
        else:
            self._succeed(span, items)

    def _wrap_function(self, fn: Callable[..., Any], spec: _SpanSpec) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            span = self._begin(spec, args, kwargs)
            if span is None:
                return fn(*args, **kwargs)
            token = attach(trace_api.set_span_in_context(span))
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:
                self._fail(span, error)
                raise
            else:
                self._succeed(span, result)
                return result
            finally:
                detach(token)
                span.end()

        return wrapper

    def _wrap_coroutine(self, fn: Callable[..., Any], spec: _SpanSpec) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            span = self._begin(spec, args, kwargs)
            if span is None:
                return await fn(*args, **kwargs)
            token = attach(trace_api.set_span_in_context(span))
            try:
                result = await fn(*args, **kwargs)
            except BaseException as error:
                self._fail(span, error)
                raise
            else:
                self._succeed(span, result)
                return result
            finally:
                detach(token)
                span.end()

        return wrapper

    def _wrap_generator(self, fn: Callable[..., Any], spec: _SpanSpec) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            span = self._begin(spec, args, kwargs)
            if span is None:
                return (yield from fn(*args, **kwargs))
            generator = fn(*args, **kwargs)
            items: list[Any] = []
            step: Callable[[], Any] = generator.__next__
            # The span is current only while the generator body runs, never in the caller.
            try:
                while True:
                    token = attach(trace_api.set_span_in_context(span))
                    try:
                        item = step()
                    except StopIteration as stop:
                        self._succeed_items(span, items)
                        return stop.value
                    except BaseException as error:
                        self._fail(span, error)
                        raise
                    finally:
                        detach(token)
                    if len(items) < MAX_RECORDED_ITEMS:
                        items.append(item)
                    try:
                        sent = yield item
                    except GeneratorExit:
                        generator.close()
                        self._succeed_items(span, items)
                        raise
                    except BaseException as error:
                        step = functools.partial(generator.throw, error)
                    else:
                        step = functools.partial(generator.send, sent)
            finally:
                span.end()

        return wrapper

    def _wrap_async_generator(self, fn: Callable[..., Any], spec: _SpanSpec) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            span = self._begin(spec, args, kwargs)
            generator = fn(*args, **kwargs)
            if span is None:
                async for item in generator:
                    yield item
                return
            items: list[Any] = []
            step: Callable[[], Any] = generator.__anext__
            try:
                while True:
                    token = attach(trace_api.set_span_in_context(span))
                    try:
                        item = await step()
                    except StopAsyncIteration:
                        self._succeed_items(span, items)
                        return
                    except BaseException as error:
                        self._fail(span, error)
                        raise
                    finally:
                        detach(token)
                    if len(items) < MAX_RECORDED_ITEMS:
                        items.append(item)
                    try:
                        sent = yield item
                    except GeneratorExit:
                        await generator.aclose()
                        self._succeed_items(span, items)
                        raise
                    except BaseException as error:
                        step = functools.partial(generator.athrow, error)
                    else:
                        step = functools.partial(generator.asend, sent)
            finally:
                span.end()

        return wrapper


def get_tracer(
    name: str,
    version: str | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    config: TraceConfig | None = None,
) -> SpanloomTracer:
    """A `SpanloomTracer` from `tracer_provider` (default: the global one).

    Without `config`, it uses the TraceConfig given to `register()`, else one from the
    environment.
    """
    provider = tracer_provider or trace_api.get_tracer_provider()
    return SpanloomTracer(
        trace_api.get_tracer(name, version, tracer_provider=provider),
        config or config_of(provider),
    )
