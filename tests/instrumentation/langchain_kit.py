"""LangChain's real chat models over the same MockTransport fakes as the provider SDKs, on the
HTTP library each SDK is built on (`httpx` or `httpx2`, see `fakes.http_library`)."""

from __future__ import annotations

import anthropic
import openai
from langchain_anthropic import ChatAnthropic
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from .fakes import FakeAPI, http_library

OPENAI_HTTP = http_library(openai)
ANTHROPIC_HTTP = http_library(anthropic)


def chat_openai(api: FakeAPI, **options: object) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        api_key="x",
        base_url="http://test/v1",
        max_retries=0,
        http_client=OPENAI_HTTP.Client(transport=OPENAI_HTTP.MockTransport(api)),
        http_async_client=OPENAI_HTTP.AsyncClient(transport=OPENAI_HTTP.MockTransport(api)),
        **options,
    )


def chat_anthropic(api: FakeAPI, **options: object) -> ChatAnthropic:
    model = ChatAnthropic(model="claude-sonnet-4-5", api_key="x", max_retries=0, max_tokens=256, **options)
    # ChatAnthropic takes no HTTP client: it builds its SDK clients in cached properties, so
    # the test fills those with SDK clients on the mock transport before the first call.
    model.__dict__["_client"] = anthropic.Anthropic(
        api_key="x",
        base_url="http://test",
        max_retries=0,
        http_client=ANTHROPIC_HTTP.Client(transport=ANTHROPIC_HTTP.MockTransport(api)),
    )
    model.__dict__["_async_client"] = anthropic.AsyncAnthropic(
        api_key="x",
        base_url="http://test",
        max_retries=0,
        http_client=ANTHROPIC_HTTP.AsyncClient(transport=ANTHROPIC_HTTP.MockTransport(api)),
    )
    return model


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"
