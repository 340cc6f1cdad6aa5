"""The LangChain callback handler that turns runs into spans; imports ``langchain_core``.

One span per run: chains (and LangGraph graphs and nodes), agents, tools, retrievers, LLM and
chat-model runs. Each run's span is started in the OpenTelemetry context current when the run
starts, so ``using_session`` / ``using_user`` and the app's own spans hold it, and the run's
span is made current while it runs (the handler runs inline, in the run's own context, sync
or async), so what the run calls nests under it: a tool's own spans, an embeddings call
inside a retriever. A span's parent is its parent run's span; when the current span is one
of another trace (a context lost on the way, as in a thread started without it), the run's
parent is taken from LangChain's run tree instead.

Runs LangChain marks hidden (``langsmith:hidden``: a graph's internal plumbing) get no span;
their children hang from the nearest shown ancestor.

A chat-model run's span is also offered to a provider instrumentor (see
``spanloom.instrumentation._model_run``): when the OpenAI or Anthropic instrumentor is on, the
model call is recorded once, on this span, with the provider's details.

Every callback is guarded: a failure costs that run's telemetry, logged once, never the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind as OTelSpanKind
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY

from spanloom import semconv
from spanloom.instrumentation._model_run import MODEL_RUN_KEY, ModelRun
from spanloom.instrumentation._span import Tracing, write_attributes
from spanloom.instrumentation.langchain import _attributes
from spanloom.sdk._guard import log_failure
from spanloom.sdk._runtime import attach_fast, current_context, reset_fast
from spanloom.sdk.context import is_tracing_suppressed, span_attributes_from_context
from spanloom.semconv import SpanKind

_HIDDEN = "langsmith:hidden"
_INTERNAL = OTelSpanKind.INTERNAL
_KIND_ATTRIBUTES = {
    kind: {semconv.OPENINFERENCE_SPAN_KIND: kind.value, semconv.GEN_AI_SPAN_KIND: kind.value}
    for kind in (SpanKind.CHAIN, SpanKind.AGENT, SpanKind.TOOL, SpanKind.RETRIEVER, SpanKind.LLM)
}


class _Run:
    """One run's open span and what ending it needs."""

    __slots__ = ("attributes", "context", "kind", "model_run", "request", "span", "token")

    def __init__(self, span: Any, kind: SpanKind, context: Context, attributes: dict[str, Any]) -> None:
        self.span = span
        self.kind = kind
        self.context = context  # where the run started: its ids go on the span
        self.attributes = attributes  # the request side, built at start
        self.token: Any = None
        self.model_run: ModelRun | None = None
        self.request: Any = None  # a model run's (builder, args): built at the end, if needed


class _Hidden:
    """A run LangChain hides: no span; its children hang from `shown` (None: the context's)."""

    __slots__ = ("shown",)

    def __init__(self, shown: _Run | None) -> None:
        self.shown = shown


def _name(serialized: Any, kwargs: dict[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if name:
        return str(name)
    if isinstance(serialized, dict):
        name = serialized.get("name")
        if name:
            return str(name)
        path = serialized.get("id")
        if isinstance(path, list) and path:
            return str(path[-1])
    return default


def _chain_kind(name: str) -> SpanKind:
    return SpanKind.AGENT if "agent" in name.lower() else SpanKind.CHAIN


class SpanloomCallbackHandler(BaseCallbackHandler):
    """Runs to spans. Registered once on LangChain's callback manager by the instrumentor."""

    # Inline: async callback managers call it in the run's own task, where its context is.
    run_inline = True
    raise_error = False

    def __init__(self, tracing: Tracing) -> None:
        super().__init__()
        self._tracing = tracing
        self._runs: dict[UUID, _Run | _Hidden] = {}

    # --- starting and ending ---

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: Sequence[str] | None,
        kind: SpanKind,
        name: str,
        attributes: dict[str, Any],
        model_run: bool = False,
    ) -> _Run | None:
        tracing = self._tracing
        if not tracing.active:
            return None
        found = self._runs.get(parent_run_id) if parent_run_id is not None else None
        parent = found.shown if isinstance(found, _Hidden) else found
        if tags and _HIDDEN in tags:
            self._runs[run_id] = _Hidden(parent)
            return None
        context = current_context()
        if is_tracing_suppressed(context):
            return None
        if parent is not None:
            current: Any = context.get(_SPAN_KEY)
            parent_span = parent.span
            if current is not parent_span and (
                current is None
                # A run LangChain ended in another task than it started in (async LangGraph
                # does) stays current in its own context: its end could not restore that.
                or not current.is_recording()
                or current.get_span_context().trace_id != parent_span.get_span_context().trace_id
            ):
                context = Context({**context, _SPAN_KEY: parent_span})
        span = tracing.tracer.start_span(name, context, kind=_INTERNAL)
        run = _Run(span, kind, context, attributes)
        # The run's span is current while it runs; a chat-model run's span is offered to the
        # provider call made inside it, and no other run's span is.
        offered = None
        if model_run:
            offered = run.model_run = ModelRun(span)
        entries = {**context, _SPAN_KEY: span}
        if offered is not None or context.get(MODEL_RUN_KEY) is not None:
            entries[MODEL_RUN_KEY] = offered
        run.token = attach_fast(Context(entries))
        self._runs[run_id] = run
        return run

    def _end(
        self, run_id: UUID, outputs: dict[str, Any] | None = None, error: BaseException | None = None
    ) -> None:
        run = self._runs.pop(run_id, None)
        if not isinstance(run, _Run):  # unknown, or hidden
            return
        if run.model_run is not None:
            run.model_run.close()
        try:
            self._finish(run, outputs, error)
        finally:
            try:
                reset_fast(run.token)
            except Exception:  # ended in another context than it started in: nothing to restore
                pass

    def _finish(self, run: _Run, outputs: dict[str, Any] | None, error: BaseException | None) -> None:
        span = run.span
        try:
            if span.is_recording():
                attributes = run.attributes
                if run.request is not None:
                    build, args = run.request
                    try:
                        attributes.update(build(*args))
                    except Exception:  # the request side is lost, not the span
                        log_failure("langchain model request attributes")
                if outputs:
                    attributes.update(outputs)
                attributes.update(_KIND_ATTRIBUTES[run.kind])
                attributes.update(span_attributes_from_context(run.context))
                config = self._tracing.config
                if not config.is_noop:
                    attributes = config.mask_attributes(attributes)
                write_attributes(span, attributes)
                if error is not None:
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        except Exception:
            log_failure("langchain run end")
        span.end()

    def _guarded_end(self, site: str, run_id: UUID, build: Any, *args: Any) -> None:
        try:
            outputs = build(*args) if build is not None else None
        except Exception:
            log_failure(site)
            outputs = None
        try:
            self._end(run_id, outputs)
        except Exception:
            log_failure(site)

    def _error(self, run_id: UUID, error: BaseException) -> None:
        try:
            self._end(run_id, None, error)
        except Exception:
            log_failure("langchain run error")

    # --- chains, agents (LangGraph graphs and nodes are chains) ---

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = _name(serialized, kwargs, "Chain")
            attributes: dict[str, Any] = {}
            _attributes.put_value(attributes, semconv.INPUT_VALUE, semconv.INPUT_MIME_TYPE, inputs)
            self._start(run_id, parent_run_id, tags, _chain_kind(name), name, attributes)
        except Exception:
            log_failure("langchain chain start")

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._guarded_end("langchain chain end", run_id, _output_of, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    # --- tools ---

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = _name(serialized, kwargs, "Tool")
            attributes: dict[str, Any] = {semconv.TOOL_NAME: name}
            description = serialized.get("description") if isinstance(serialized, dict) else None
            if description:
                attributes[semconv.TOOL_DESCRIPTION] = description
            value = inputs if inputs is not None else input_str
            _attributes.put_value(attributes, semconv.INPUT_VALUE, semconv.INPUT_MIME_TYPE, value)
            self._start(run_id, parent_run_id, tags, SpanKind.TOOL, name, attributes)
        except Exception:
            log_failure("langchain tool start")

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._guarded_end("langchain tool end", run_id, _output_of, _attributes.tool_output(output))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    # --- retrievers ---

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = _name(serialized, kwargs, "Retriever")
            attributes: dict[str, Any] = {}
            _attributes.put_value(attributes, semconv.INPUT_VALUE, semconv.INPUT_MIME_TYPE, query)
            self._start(run_id, parent_run_id, tags, SpanKind.RETRIEVER, name, attributes)
        except Exception:
            log_failure("langchain retriever start")

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        self._guarded_end("langchain retriever end", run_id, _attributes.documents, {}, documents)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    # --- LLM and chat-model runs ---

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        request = (
            _attributes.chat_request,
            (messages[0] if messages else (), kwargs.get("invocation_params"), metadata),
        )
        self._model_start(serialized, run_id, parent_run_id, tags, kwargs, request)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        request = (_attributes.prompt_request, (prompts, kwargs.get("invocation_params"), metadata))
        self._model_start(serialized, run_id, parent_run_id, tags, kwargs, request)

    def _model_start(
        self,
        serialized: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: Sequence[str] | None,
        kwargs: dict[str, Any],
        request: tuple[Any, tuple[Any, ...]],
    ) -> None:
        try:
            name = _name(serialized, kwargs, "LLM")
            # One generate() call over several prompts makes a run for each before any model
            # call: which run a provider call belongs to is unknown, so none is offered.
            offer = (kwargs.get("batch_size") or 1) == 1
            run = self._start(run_id, parent_run_id, tags, SpanKind.LLM, name, {}, model_run=offer)
            if run is not None:
                run.request = request  # built at the end, unless a provider call recorded it
        except Exception:
            log_failure("langchain model start")

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if type(run) is _Run and run.model_run is not None and run.model_run.recorded:
            run.request = None  # the provider instrumentor wrote the whole call on this span
            self._guarded_end("langchain model end", run_id, None)
            return
        self._guarded_end("langchain model end", run_id, _attributes.llm_response, response)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if type(run) is _Run and run.model_run is not None and run.model_run.claimed:
            run.request = None  # the provider call wrote the request
        self._error(run_id, error)


def _output_of(value: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if value is not None:
        _attributes.put_value(attributes, semconv.OUTPUT_VALUE, semconv.OUTPUT_MIME_TYPE, value)
    return attributes
