"""register(): provider, processors, exporter endpoint and headers; import stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from spanloom import SessionSpanProcessor, TraceConfig, register, using_attributes
from spanloom.sdk.export import ResilientSpanExporter
from spanloom.sdk.register import DEFAULT_ENDPOINT, SuppressionAwareSampler, config_of, resolve_endpoint


def processors(provider):
    return list(provider._active_span_processor._span_processors)


def exporter_of(provider):
    """The OTLP exporter inside register()'s ResilientSpanExporter."""
    resilient = next(p for p in processors(provider) if not isinstance(p, SessionSpanProcessor)).span_exporter
    assert isinstance(resilient, ResilientSpanExporter)
    return resilient.exporter


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in (
        "SPANLOOM_ENDPOINT",
        "SPANLOOM_API_KEY",
        "SPANLOOM_PROJECT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults(capsys):
    provider = register(set_global_tracer_provider=False)
    assert provider.resource.attributes["project.name"] == "default"
    assert isinstance(provider.sampler, SuppressionAwareSampler)
    first, second = processors(provider)
    assert isinstance(first, SessionSpanProcessor) and first.read_baggage
    assert isinstance(second, BatchSpanProcessor)
    assert exporter_of(provider)._endpoint == DEFAULT_ENDPOINT == "http://127.0.0.1:4318/v1/traces"
    assert capsys.readouterr() == ("", "")  # prints nothing unless asked
    provider.shutdown()


def test_arguments(capsys):
    config = TraceConfig(hide_inputs=True)
    provider = register(
        project_name="support-bot",
        endpoint="http://collector.test:9999/v1/traces",
        headers={"x-team": "a"},
        batch=False,
        set_global_tracer_provider=False,
        config=config,
        read_baggage=False,
        verbose=True,
    )
    assert provider.resource.attributes["project.name"] == "support-bot"
    first, second = processors(provider)
    assert not first.read_baggage
    assert isinstance(second, SimpleSpanProcessor)
    exporter = exporter_of(provider)
    assert exporter._endpoint == "http://collector.test:9999/v1/traces"
    assert config_of(provider) is config
    printed = capsys.readouterr().out
    assert "support-bot" in printed and "collector.test:9999" in printed
    provider.shutdown()


def test_environment_and_a_real_export(monkeypatch, collector):
    monkeypatch.setenv("SPANLOOM_PROJECT", "from-env")
    monkeypatch.setenv("SPANLOOM_API_KEY", "k123")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base + "/")
    provider = register(set_global_tracer_provider=False, batch=False)
    with using_attributes(session_id="conv-42", user_id="alice"):
        provider.get_tracer("t").start_span("turn").end()
    provider.shutdown()
    [(path, headers, _)] = collector.requests
    assert path == "/v1/traces"
    assert headers["authorization"] == "Bearer k123"
    assert headers["content-type"] == "application/x-protobuf"
    [span] = collector.spans()
    attributes = {kv.key: kv.value.string_value for kv in span.attributes}
    assert attributes["session.id"] == "conv-42" and attributes["user.id"] == "alice"
    request = ExportTraceServiceRequest.FromString(collector.requests[0][2])
    resource = {kv.key: kv.value.string_value for kv in request.resource_spans[0].resource.attributes}
    assert resource["project.name"] == "from-env"


def test_endpoint_precedence(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic.test")
    assert resolve_endpoint() == "http://generic.test/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces.test/x")
    assert resolve_endpoint() == "http://traces.test/x"
    monkeypatch.setenv("SPANLOOM_ENDPOINT", "http://spanloom.test/v1/traces")
    assert resolve_endpoint() == "http://spanloom.test/v1/traces"
    assert resolve_endpoint("http://arg.test") == "http://arg.test"


def test_explicit_authorization_header_wins(monkeypatch, collector):
    monkeypatch.setenv("SPANLOOM_API_KEY", "from-env")
    provider = register(
        endpoint=collector.base + "/v1/traces",
        headers={"Authorization": "Bearer mine"},
        set_global_tracer_provider=False,
        batch=False,
    )
    provider.get_tracer("t").start_span("x").end()
    provider.shutdown()
    assert collector.requests[0][1]["authorization"] == "Bearer mine"


def run_python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_import_spanloom_stays_light():
    loaded = run_python(
        "import sys, spanloom\n"
        "heavy = {'starlette', 'fastapi', 'uvicorn', 'jinja2', 'sqlite3', 'click', 'requests', 'openai',"
        " 'anthropic', 'google', 'httpx', 'pandas', 'polars'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or m.startswith(('spanloom.server', 'spanloom.client')) or m == 'spanloom.cli'))"
    )
    assert loaded.strip() == "[]"


def test_register_installs_no_signal_handlers_and_sends_nothing():
    # A closed port: register() must neither connect nor block nor print.
    out = run_python(
        "import signal, socket\n"
        "before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}\n"
        "calls = []\n"
        "real = socket.socket.connect\n"
        "socket.socket.connect = lambda self, *a: calls.append(a) or real(self, *a)\n"
        "import spanloom\n"
        "provider = spanloom.register(endpoint='http://127.0.0.1:9/v1/traces')\n"
        "after = {s: signal.getsignal(s) for s in before}\n"
        "print(before == after, calls == [])\n"
    )
    assert out.strip() == "True True"
