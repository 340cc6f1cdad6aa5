"""The instrumentors as OpenTelemetry instrumentors: entry points, dependency checks, singletons.

The subprocess tests run an application the way OpenTelemetry users do,
``opentelemetry-instrument python app.py``, configured by OTEL_* variables alone
(opentelemetry-distro), exporting OTLP/HTTP to a collector in this process, or with the distro's
defaults (OTLP/gRPC) to a real `spanloom serve`. The application never imports an instrumentor:
the spans come from the entry points.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from openai.resources.chat.completions import Completions
from opentelemetry.instrumentation.dependencies import DependencyConflictError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from spanloom.instrumentation.anthropic import AnthropicInstrumentor
from spanloom.instrumentation.google_genai import GoogleGenAIInstrumentor
from spanloom.instrumentation.langchain import LangChainInstrumentor
from spanloom.instrumentation.openai import OpenAIInstrumentor

# The server kit (a real server over a tmp SQLite file) lives with the server tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from _server_kit import run_server

APP = """
import importlib

import anthropic
import openai

from spanloom import using_session, using_user

CHAT = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Leaves drift and fall"}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
}
MESSAGE = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Quiet pond"}], "stop_reason": "end_turn",
    "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 3},
}


def http_library(sdk):
    # httpx up to openai 1.x and anthropic 0.x, httpx2 after: the library of the SDK's own client
    return importlib.import_module(sdk.DefaultHttpxClient.__mro__[1].__module__.partition(".")[0])


def fake_provider(request):
    # No network: the provider answers from here, in the library the request came in.
    library = importlib.import_module(type(request).__module__.partition(".")[0])
    return library.Response(200, json=MESSAGE if request.url.path.endswith("/messages") else CHAT)


def fake_client(sdk):
    library = http_library(sdk)
    return library.Client(transport=library.MockTransport(fake_provider))


client = openai.OpenAI(api_key="x", base_url="http://openai.invalid/v1", max_retries=0,
                       http_client=fake_client(openai))
claude = anthropic.Anthropic(api_key="x", base_url="http://anthropic.invalid", max_retries=0,
                             http_client=fake_client(anthropic))
haiku = [{"role": "user", "content": "Write a haiku."}]

with using_session("s-auto"), using_user("u-auto"):
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=haiku)
with using_session("s-claude"):
    reply = claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=haiku)
print(answer.choices[0].message.content, "/", reply.content[0].text)
"""


def value(any_value: AnyValue) -> object:
    return getattr(any_value, any_value.WhichOneof("value"))


def received_spans(collector) -> dict[str, tuple[str, dict[str, object]]]:
    """span name -> (instrumentation scope, attributes), from what the collector received."""
    spans = {}
    for _, _, body in collector.requests:
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {kv.key: value(kv.value) for kv in span.attributes}
                    spans[span.name] = (scope_spans.scope.name, attributes)
    return spans


def run_instrumented(app_source: str, tmp_path: Path, variables: dict[str, str]) -> str:
    """`opentelemetry-instrument python app.py` with only `variables` among OTEL_* settings."""
    instrument = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert instrument, "opentelemetry-instrument is installed with the dev extra"
    app = tmp_path / "app.py"
    app.write_text(app_source)
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "SPANLOOM_"))},
        # A developer's environment may also hold OpenInference's instrumentors (the bench extra),
        # which the distro would load beside ours: each call traced twice.
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai,langchain",
        **variables,
    }
    result = subprocess.run(
        [instrument, sys.executable, str(app)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Leaves drift and fall / Quiet pond"
    return result.stderr


def wait_for_spans(collector, names: set[str], stderr: str) -> dict[str, tuple[str, dict[str, object]]]:
    deadline = time.monotonic() + 20
    while names - received_spans(collector).keys():
        assert time.monotonic() < deadline, (received_spans(collector), stderr)
        time.sleep(0.05)
    return received_spans(collector)


def test_opentelemetry_instrument_records_session_tagged_spans(collector, tmp_path):
    # Configured by OTEL_* variables alone, as opentelemetry-distro reads them.
    stderr = run_instrumented(
        APP,
        tmp_path,
        {
            "OTEL_SERVICE_NAME": "auto-app",
            "OTEL_TRACES_EXPORTER": "otlp_proto_http",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.base + "/v1/traces",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
        },
    )
    spans = wait_for_spans(collector, {"ChatCompletion", "Messages"}, stderr)
    scope, chat = spans["ChatCompletion"]
    assert scope == "spanloom.instrumentation.openai"
    assert chat["session.id"] == "s-auto"
    assert chat["gen_ai.conversation.id"] == "s-auto"
    assert chat["user.id"] == "u-auto"
    assert chat["output.value"] == "Leaves drift and fall"
    scope, message = spans["Messages"]
    assert scope == "spanloom.instrumentation.anthropic"
    assert message["session.id"] == "s-claude"
    assert "user.id" not in message


def test_opentelemetry_instrument_with_the_distros_defaults_lands_in_spanloom_serve_over_grpc(tmp_path):
    # The distro's defaults send every signal over OTLP/gRPC, to localhost:4317 unless told
    # otherwise: only the endpoint is set here, to this test's own server (as "localhost", as in
    # the default), as a user with another port would.
    with run_server(tmp_path / "spanloom.db", grpc=True) as server:
        assert server.grpc_target is not None
        port = server.grpc_target.rpartition(":")[2]
        stderr = run_instrumented(APP, tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://localhost:{port}"})
        # The app has exited: its exporter flushed at shutdown, and what the server acknowledged
        # was committed before it answered.
        (trace,) = server.get_json("/api/traces", session_id="s-auto")["items"]
        assert (trace["user_id"], trace["name"], trace["output"]) == (
            "u-auto",
            "ChatCompletion",
            "Leaves drift and fall",
        )
        # With opentelemetry-instrumentation-httpx installed, the distro adds the HTTP call too.
        spans = server.get_json(f"/api/traces/{trace['trace_id']}")["spans"]
        (span,) = [span for span in spans if span["span_kind"] == "LLM"]
        assert {s["name"] for s in spans} <= {"ChatCompletion", "POST"}, spans
        assert span["attributes"]["session.id"] == "s-auto", stderr
        assert span["model"] == "gpt-4o-mini"
        (claude,) = server.get_json("/api/traces", session_id="s-claude")["items"]
        assert claude["name"] == "Messages" and claude["user_id"] is None
        session = server.get_json("/api/sessions/s-auto")
        assert (session["user_id"], session["trace_count"]) == ("u-auto", 1)


def test_opentelemetry_instrument_with_register_in_the_app(collector, tmp_path):
    # No distro configuring anything: the app calls spanloom.register(), after the entry points
    # were instrumented against the global provider it then installs.
    app = APP.replace(
        "from spanloom import using_session, using_user",
        "import spanloom\n"
        "from spanloom import using_session, using_user\n\n"
        f"provider = spanloom.register(project_name='auto-app', endpoint='{collector.base}/v1/traces')",
    )
    app += "provider.shutdown()\n"
    stderr = run_instrumented(
        app, tmp_path, {"OTEL_PYTHON_DISTRO": "none", "OTEL_PYTHON_CONFIGURATOR": "none"}
    )
    spans = wait_for_spans(collector, {"ChatCompletion", "Messages"}, stderr)
    scope, chat = spans["ChatCompletion"]
    assert scope == "spanloom.instrumentation.openai"
    assert (chat["session.id"], chat["user.id"]) == ("s-auto", "u-auto")
    assert spans["Messages"][1]["session.id"] == "s-claude"


def test_entry_points_name_the_instrumentors():
    found = {entry.name: entry.load() for entry in entry_points(group="opentelemetry_instrumentor")}
    assert found["spanloom_openai"] is OpenAIInstrumentor
    assert found["spanloom_anthropic"] is AnthropicInstrumentor
    assert found["spanloom_langchain"] is LangChainInstrumentor
    assert found["spanloom_google_genai"] is GoogleGenAIInstrumentor


def test_instrumentors_are_opentelemetry_instrumentors():
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

    for cls, package in (
        (OpenAIInstrumentor, "openai"),
        (AnthropicInstrumentor, "anthropic"),
        (LangChainInstrumentor, "langchain-core"),
        (GoogleGenAIInstrumentor, "google-genai"),
    ):
        instrumentor = cls()
        assert isinstance(instrumentor, BaseInstrumentor)
        assert cls() is instrumentor  # OpenTelemetry's instrumentors are singletons
        (requirement,) = instrumentor.instrumentation_dependencies()
        assert requirement.startswith(package + " >=")
        assert instrumentor._check_dependency_conflicts() is None  # the installed SDK is supported


class _FutureOpenAIInstrumentor(OpenAIInstrumentor):
    """Supports only an openai release that does not exist yet."""

    _instance = None  # a singleton of its own, not the parent's
    dependencies = ("openai >= 999",)


@pytest.fixture
def future_instrumentor():
    instrumentor = _FutureOpenAIInstrumentor()
    yield instrumentor
    instrumentor.uninstrument()


def test_an_unsupported_sdk_version_is_logged_and_nothing_patched(future_instrumentor, provider, caplog):
    original = Completions.__dict__["create"]
    with caplog.at_level(logging.ERROR):
        future_instrumentor.instrument(tracer_provider=provider)
    assert "openai >= 999" in caplog.text
    assert Completions.__dict__["create"] is original
    assert not future_instrumentor.is_instrumented


def test_the_auto_instrumentation_path_gets_the_conflict_raised(future_instrumentor, provider):
    # opentelemetry-instrument's loader calls instrument(skip_dep_check=True) and expects
    # DependencyConflictError for an instrumentor that cannot run.
    original = Completions.__dict__["create"]
    with pytest.raises(DependencyConflictError, match="openai >= 999"):
        future_instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
    assert Completions.__dict__["create"] is original


def test_opentelemetry_style_instrument_and_uninstrument(provider):
    instrumentor = OpenAIInstrumentor()
    original = Completions.__dict__["create"]
    instrumentor.instrument(tracer_provider=provider)
    try:
        assert instrumentor.is_instrumented_by_opentelemetry
        assert Completions.__dict__["create"] is not original
    finally:
        instrumentor.uninstrument()
    assert not instrumentor.is_instrumented_by_opentelemetry
    assert Completions.__dict__["create"] is original
