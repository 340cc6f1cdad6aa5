"""register(): a TracerProvider that sends session-aware spans to spanloom, in one call."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from spanloom import semconv
from spanloom.sdk.context import is_tracing_suppressed
from spanloom.sdk.destination import DEFAULT_ENDPOINT as DEFAULT_ENDPOINT  # where register() sends by default
from spanloom.sdk.destination import remember_registration, resolve_endpoint, resolve_headers
from spanloom.sdk.export import DEFAULT_MAX_PENDING_SPANS, ResilientSpanExporter
from spanloom.sdk.mask import TraceConfig
from spanloom.sdk.processor import SessionSpanProcessor

DEFAULT_PROJECT = "default"
# One export attempt (with the OTLP exporter's own retries) gives up after this many seconds;
# undelivered spans then wait in ResilientSpanExporter. Short, so a shutdown with the server
# down ends quickly.
DEFAULT_EXPORT_TIMEOUT_SECONDS = 5.0


class SuppressionAwareSampler(Sampler):
    """Drops spans started inside `suppress_tracing()`; otherwise defers to `delegate`.

    The OpenTelemetry SDK does not consult the suppression key itself, so without this a
    hand-written span inside `suppress_tracing()` would still be exported.
    """

    def __init__(self, delegate: Sampler | None = None) -> None:
        self._delegate = delegate or ParentBased(ALWAYS_ON)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if is_tracing_suppressed(parent_context):
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"SuppressionAwareSampler{{{self._delegate.get_description()}}}"


def _timeout_from_environment() -> bool:
    return any(
        os.environ.get(name) for name in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
    )


def _env_float(name: str) -> float | None:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def register(
    project_name: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    batch: bool = True,
    set_global_tracer_provider: bool = True,
    config: TraceConfig | None = None,
    read_baggage: bool = True,
    verbose: bool = False,
) -> TracerProvider:
    """Build a TracerProvider that stamps session and user ids on spans and exports them.

    Spans go over OTLP/HTTP protobuf to `endpoint` (default: SPANLOOM_ENDPOINT, the standard
    OTEL_EXPORTER_OTLP_* variables, else ``http://127.0.0.1:4318/v1/traces``, where
    ``spanloom serve`` listens). SPANLOOM_API_KEY becomes an ``Authorization: Bearer`` header
    and SPANLOOM_PROJECT the project. No network call and no output happen here
    (``verbose=True`` prints where spans go).
    """
    # Imported here so that `import spanloom` does not load the exporter's HTTP stack.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    project = project_name or os.environ.get("SPANLOOM_PROJECT", "").strip() or DEFAULT_PROJECT
    resolved_endpoint = resolve_endpoint(endpoint)
    provider = TracerProvider(
        resource=Resource.create({semconv.PROJECT_NAME: project}),
        sampler=SuppressionAwareSampler(),
    )
    provider.add_span_processor(SessionSpanProcessor(read_baggage=read_baggage))
    resolved_headers = resolve_headers(headers)
    exporter = ResilientSpanExporter(
        OTLPSpanExporter(
            endpoint=resolved_endpoint,
            headers=resolved_headers,
            timeout=None if _timeout_from_environment() else DEFAULT_EXPORT_TIMEOUT_SECONDS,
        ),
        max_pending_spans=int(_env_float("SPANLOOM_MAX_PENDING_SPANS") or DEFAULT_MAX_PENDING_SPANS),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    # The config instrumentors and spanloom tracers use when given none of their own.
    provider._spanloom_config = config or TraceConfig()  # type: ignore[attr-defined]  # an attribute of our own on the SDK provider
    if set_global_tracer_provider:
        trace_api.set_tracer_provider(provider)
    # log_feedback() and end_session() go to this server, with this key and project.
    remember_registration(resolved_endpoint, resolved_headers, project)
    if verbose:
        print(
            f"spanloom: project {project!r}, spans -> {resolved_endpoint} "
            f"({'batched' if batch else 'sent one by one'}, OTLP/HTTP protobuf), "
            f"baggage ids {'read' if read_baggage else 'ignored'}"
            f"{', global provider' if set_global_tracer_provider else ''}",
        )
    return provider


def config_of(tracer_provider: Any) -> TraceConfig | None:
    """The TraceConfig `register()` attached to a provider, if any."""
    return getattr(tracer_provider, "_spanloom_config", None)
