"""LangChain's real chat models over the same MockTransport fakes as the provider SDKs."""

from __future__ import annotations

import anthropic
import httpx2
from langchain_anthropic import ChatAnthropic
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from .fakes import FakeAPI


def chat_openai(api: FakeAPI, **options: object) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        api_key="x",
        base_url="http://test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(api)),
        http_async_client=httpx2.AsyncClient(transport=httpx2.MockTransport(api)),
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
        http_client=httpx2.Client(transport=httpx2.MockTransport(api)),
    )
    model.__dict__["_async_client"] = anthropic.AsyncAnthropic(
        api_key="x",
        base_url="http://test",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(api)),
    )
    return model


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"
