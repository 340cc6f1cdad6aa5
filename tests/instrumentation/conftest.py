"""Fixtures: provider clients on a mocked transport, instrumentors set up and torn down per test."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx2
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider

from spanloom.instrumentation.anthropic import AnthropicInstrumentor
from spanloom.instrumentation.openai import OpenAIInstrumentor

from .fakes import FakeAPI


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI()


@pytest.fixture
def openai_client(api: FakeAPI) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        api_key="x",
        base_url="http://test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(api)),
    )
    yield client
    client.close()


@pytest.fixture
def async_openai_client(api: FakeAPI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="x",
        base_url="http://test/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(api)),
    )


@pytest.fixture
def anthropic_client(api: FakeAPI) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        api_key="x",
        base_url="http://test",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(api)),
    )
    yield client
    client.close()


@pytest.fixture
def async_anthropic_client(api: FakeAPI) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key="x",
        base_url="http://test",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(api)),
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
