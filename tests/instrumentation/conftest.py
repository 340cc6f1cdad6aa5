"""Fixtures: provider clients on a mocked transport (of the HTTP library each SDK is built on),
instrumentors set up and torn down per test."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider

from spanloom.instrumentation.anthropic import AnthropicInstrumentor
from spanloom.instrumentation.openai import OpenAIInstrumentor

from .fakes import FakeAPI, http_library

OPENAI_HTTP = http_library(openai)
ANTHROPIC_HTTP = http_library(anthropic)


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI()


@pytest.fixture
def openai_client(api: FakeAPI) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        api_key="x",
        base_url="http://test/v1",
        max_retries=0,
        http_client=OPENAI_HTTP.Client(transport=OPENAI_HTTP.MockTransport(api)),
    )
    yield client
    client.close()


@pytest.fixture
def async_openai_client(api: FakeAPI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="x",
        base_url="http://test/v1",
        max_retries=0,
        http_client=OPENAI_HTTP.AsyncClient(transport=OPENAI_HTTP.MockTransport(api)),
    )


@pytest.fixture
def anthropic_client(api: FakeAPI) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        api_key="x",
        base_url="http://test",
        max_retries=0,
        http_client=ANTHROPIC_HTTP.Client(transport=ANTHROPIC_HTTP.MockTransport(api)),
    )
    yield client
    client.close()


@pytest.fixture
def async_anthropic_client(api: FakeAPI) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key="x",
        base_url="http://test",
        max_retries=0,
        http_client=ANTHROPIC_HTTP.AsyncClient(transport=ANTHROPIC_HTTP.MockTransport(api)),
    )


@pytest.fixture
def openai_instrumented(provider: TracerProvider) -> Iterator[OpenAIInstrumentor]:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def anthropic_instrumented(provider: TracerProvider) -> Iterator[AnthropicInstrumentor]:
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield instrumentor
    instrumentor.uninstrument()
