"""instrument()/uninstrument(), suppression, and the "never break the host" guarantee."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import anthropic
import openai
import pytest
from openai.resources.chat.completions import AsyncCompletions, Completions
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NoOpTracerProvider

from spanloom import suppress_tracing, using_session
from spanloom.instrumentation.anthropic import AnthropicInstrumentor
from spanloom.instrumentation.openai import OpenAIInstrumentor
from spanloom.instrumentation.openai import _attributes as openai_attributes
from spanloom.instrumentation.openai import _stream as openai_stream

from .fakes import anthropic_message, chat_chunks, chat_completion, json_response, only_span, openai_sse

HAIKU = [{"role": "user", "content": "Write a haiku."}]


@pytest.fixture
def instrumentor():
    instrumentor = OpenAIInstrumentor()
    yield instrumentor
    instrumentor.uninstrument()


def _create(client: openai.OpenAI) -> str:
    return client.chat.completions.create(model="m", messages=HAIKU).choices[0].message.content


def test_uninstrument_restores_the_original_methods(provider, instrumentor, api, openai_client, exporter):
    originals = (Completions.__dict__["create"], AsyncCompletions.__dict__["create"])
    instrumentor.instrument(tracer_provider=provider)
    assert Completions.__dict__["create"] is not originals[0]
    assert instrumentor.is_instrumented

    instrumentor.uninstrument()
    assert (Completions.__dict__["create"], AsyncCompletions.__dict__["create"]) == originals
    assert not instrumentor.is_instrumented
    api.reply(json_response(chat_completion()))
    assert _create(openai_client) == "Leaves drift and fall"
    assert exporter.get_finished_spans() == ()


def test_anthropic_uninstrument_restores(provider, api, anthropic_client, exporter):
    originals = {name: anthropic.resources.messages.Messages.__dict__[name] for name in ("create", "stream")}
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    instrumentor.uninstrument()
    assert {name: anthropic.resources.messages.Messages.__dict__[name] for name in originals} == originals
    api.reply(json_response(anthropic_message()))
    anthropic_client.messages.create(model="claude", max_tokens=5, messages=HAIKU)
    assert exporter.get_finished_spans() == ()


def test_instrumenting_twice_does_not_double_spans(provider, instrumentor, api, openai_client, exporter):
    instrumentor.instrument(tracer_provider=provider)
    instrumentor.instrument(tracer_provider=provider)
    other = OpenAIInstrumentor()
    other.instrument(tracer_provider=provider)
    try:
        api.reply(json_response(chat_completion()))
        _create(openai_client)
        only_span(exporter)
    finally:
        other.uninstrument()
    instrumentor.uninstrument()
    assert "__spanloom_original__" not in vars(Completions.__dict__["create"])


def test_reinstrument_switches_provider(provider, instrumentor, api, openai_client, exporter):
    instrumentor.instrument(tracer_provider=NoOpTracerProvider())
    instrumentor.instrument(tracer_provider=provider)
    api.reply(json_response(chat_completion()))
    _create(openai_client)
    only_span(exporter)


def test_wrappers_cached_before_uninstrument_stop_tracing(
    provider, instrumentor, api, openai_client, exporter
):
    instrumentor.instrument(tracer_provider=provider)
    raw_create = openai_client.chat.completions.with_raw_response.create  # binds the wrapper
    instrumentor.uninstrument()
    api.reply(json_response(chat_completion()))
    raw_create(model="m", messages=HAIKU)
    assert exporter.get_finished_spans() == ()


def test_suppress_tracing_lets_the_call_through(provider, instrumentor, api, openai_client, exporter):
    instrumentor.instrument(tracer_provider=provider)
    api.reply(json_response(chat_completion()), openai_sse(chat_chunks(["a"])))
    with suppress_tracing():
        assert _create(openai_client) == "Leaves drift and fall"
        assert len(list(openai_client.chat.completions.create(model="m", messages=HAIKU, stream=True))) == 3
    assert exporter.get_finished_spans() == ()


def test_suppress_tracing_async(provider, instrumentor, api, async_openai_client, exporter):
    instrumentor.instrument(tracer_provider=provider)
    api.reply(json_response(chat_completion()))

    async def main():
        with suppress_tracing():
            return await async_openai_client.chat.completions.create(model="m", messages=HAIKU)

    assert asyncio.run(main()).choices[0].message.content == "Leaves drift and fall"
    assert exporter.get_finished_spans() == ()


def _boom(*args, **kwargs):
    raise RuntimeError("builder bug")


def test_broken_request_builder_does_not_touch_the_call(
    monkeypatch, provider, instrumentor, api, openai_client, exporter
):
    monkeypatch.setattr(openai_attributes, "chat_request", _boom)
    instrumentor.instrument(tracer_provider=provider)
    api.reply(json_response(chat_completion()))
    with using_session("s-broken"):
        assert _create(openai_client) == "Leaves drift and fall"
    # The request side is lost, nothing else: the span still ends with the ids and the response.
    span = only_span(exporter)
    assert span.attributes["session.id"] == "s-broken"
    assert span.attributes["output.value"] == "Leaves drift and fall"
    assert "input.value" not in span.attributes


def test_broken_response_builder_still_ends_the_span(
    monkeypatch, provider, instrumentor, api, openai_client, exporter
):
    monkeypatch.setattr(openai_attributes, "chat_response", _boom)
    instrumentor.instrument(tracer_provider=provider)
    api.reply(json_response(chat_completion()))
    with using_session("s-broken"):
        assert _create(openai_client) == "Leaves drift and fall"
    span = only_span(exporter)
    assert span.attributes["session.id"] == "s-broken"
    assert "output.value" not in span.attributes


def test_broken_stream_accumulator_leaves_the_stream_intact(
    monkeypatch, provider, instrumentor, api, openai_client, exporter
):
    monkeypatch.setattr(openai_stream.ChatStreamAccumulator, "extend", _boom)
    instrumentor.instrument(tracer_provider=provider)
    api.reply(openai_sse(chat_chunks(["x", "y"])))
    texts = [
        c.choices[0].delta.content
        for c in openai_client.chat.completions.create(model="m", messages=HAIKU, stream=True)
        if c.choices
    ]
    assert texts == ["x", "y", None]
    assert only_span(exporter).name == "ChatCompletion"


def test_a_raising_span_processor_does_not_break_the_call(instrumentor, api, openai_client):
    class Raising(SpanProcessor):
        def on_start(self, span, parent_context=None):
            raise RuntimeError("processor bug")

    provider = TracerProvider()
    provider.add_span_processor(Raising())
    instrumentor.instrument(tracer_provider=provider)
    api.reply(json_response(chat_completion()))
    assert _create(openai_client) == "Leaves drift and fall"


def test_config_comes_from_the_provider_register_built(exporter, instrumentor, api, openai_client):
    from spanloom import TraceConfig

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider._spanloom_config = TraceConfig(hide_inputs=True)  # what register(config=...) attaches
    instrumentor.instrument(tracer_provider=provider)
    api.reply(json_response(chat_completion()))
    _create(openai_client)
    attributes = only_span(exporter).attributes
    assert attributes["input.value"] == "__REDACTED__"
    assert attributes["output.value"] == "Leaves drift and fall"


def test_ids_survive_the_attribute_limit(bare_provider, instrumentor, api, openai_client, exporter):
    instrumentor.instrument(tracer_provider=bare_provider)
    api.reply(json_response(chat_completion()))
    long_conversation = [{"role": "user", "content": f"message {i}", "name": f"n{i}"} for i in range(60)]
    with using_session("s-long"):
        openai_client.chat.completions.create(model="m", messages=long_conversation)
    attributes = only_span(exporter).attributes
    assert len(attributes) == 128
    assert attributes["session.id"] == "s-long"
    assert attributes["openinference.span.kind"] == "LLM"
    assert attributes["output.value"] == "Leaves drift and fall"


def test_importing_without_the_provider_sdks():
    code = (
        "import sys\n"
        "for name in ('openai', 'anthropic', 'langchain_core', 'google.genai'):\n"
        "    sys.modules[name] = None\n"
        "from spanloom.instrumentation.openai import OpenAIInstrumentor\n"
        "from spanloom.instrumentation.anthropic import AnthropicInstrumentor\n"
        "from spanloom.instrumentation.langchain import LangChainInstrumentor\n"
        "from spanloom.instrumentation.google_genai import GoogleGenAIInstrumentor\n"
        "instrumentors = (OpenAIInstrumentor, AnthropicInstrumentor, LangChainInstrumentor,\n"
        "                 GoogleGenAIInstrumentor)\n"
        "for cls in instrumentors:\n"
        "    try:\n"
        "        cls().instrument()\n"
        "    except ImportError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('instrument() without the SDK should raise ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_importing_an_instrumentor_imports_no_framework_or_sdk():
    code = (
        "import sys\n"
        "import spanloom.instrumentation.openai, spanloom.instrumentation.anthropic\n"
        "import spanloom.instrumentation.langchain, spanloom.instrumentation.google_genai\n"
        "heavy = ('openai', 'anthropic', 'langchain_core', 'langgraph', 'google')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=60, capture_output=True, text=True
    )
    assert result.stdout.strip() == "[]"
