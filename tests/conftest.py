"""Shared fixtures: each test builds its own tracing world."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanloom import SessionSpanProcessor


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    """A fresh provider with the SessionSpanProcessor, exporting to memory."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SessionSpanProcessor())
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


@pytest.fixture
def bare_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    """A provider without SessionSpanProcessor: whatever ids land came from the code itself."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()
