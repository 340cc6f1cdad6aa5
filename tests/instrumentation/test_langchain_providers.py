"""LangChain's chat models under the provider instrumentors alone: ``langchain-openai`` and
``langchain-anthropic`` call the SDKs through ``with_raw_response``, and their spans carry the
model, the tokens, the output, the finish reason and the tool calls all the same."""

from __future__ import annotations

import asyncio
import json

import pytest

from spanloom import using_session

from .fakes import (
    anthropic_events,
    anthropic_message,
    anthropic_sse,
    chat_chunks,
    chat_completion,
    json_response,
    only_span,
    openai_sse,
)
from .langchain_kit import chat_anthropic, chat_openai, get_weather

pytestmark = pytest.mark.usefixtures("openai_instrumented", "anthropic_instrumented")

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}
TOOL_USE = {"id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}


def _run(is_async, sync_call, async_call):
    with using_session("s-lc"):
        if not is_async:
            return sync_call()
        return asyncio.run(async_call())


async def _astream(model, prompt):
    return [chunk async for chunk in model.astream(prompt)]


def _common(attributes, model, finish_reason):
    assert attributes["session.id"] == "s-lc"
    assert attributes["llm.model_name"] == model
    assert attributes["llm.finish_reason"] == finish_reason
    assert attributes["llm.input_messages.0.message.content"] == "Write a haiku"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_chat_openai_invoke(api, exporter, is_async):
    api.reply(json_response(chat_completion()))
    model = chat_openai(api)
    message = _run(is_async, lambda: model.invoke("Write a haiku"), lambda: model.ainvoke("Write a haiku"))
    assert message.content == "Leaves drift and fall"
    attributes = only_span(exporter).attributes
    _common(attributes, "gpt-4o-mini-2024-07-18", "stop")
    assert attributes["output.value"] == "Leaves drift and fall"
    assert attributes["llm.token_count.prompt"] == 12
    assert attributes["llm.token_count.completion"] == 7
    assert attributes["llm.token_count.total"] == 19


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("headers", [False, True], ids=["create", "with_raw_response"])
def test_chat_openai_stream(api, exporter, is_async, headers):
    # With include_response_headers LangChain streams through with_raw_response too.
    api.reply(openai_sse(chat_chunks(["Leaves ", "drift"])))
    model = chat_openai(api, include_response_headers=headers, stream_usage=True)
    chunks = _run(
        is_async, lambda: list(model.stream("Write a haiku")), lambda: _astream(model, "Write a haiku")
    )
    assert "".join(chunk.content for chunk in chunks) == "Leaves drift"
    attributes = only_span(exporter).attributes
    _common(attributes, "gpt-4o-mini-2024-07-18", "stop")
    assert attributes["output.value"] == "Leaves drift"
    assert attributes["llm.token_count.completion"] == 50  # stream_usage: LangChain asks for it
    assert api.requests[0]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_chat_openai_tool_calls(api, exporter, is_async):
    api.reply(
        json_response(chat_completion(None, message={"tool_calls": [CALL]}, finish_reason="tool_calls"))
    )
    model = chat_openai(api).bind_tools([get_weather])
    message = _run(is_async, lambda: model.invoke("Write a haiku"), lambda: model.ainvoke("Write a haiku"))
    assert message.tool_calls[0]["args"] == {"city": "Oslo"}
    attributes = only_span(exporter).attributes
    _common(attributes, "gpt-4o-mini-2024-07-18", "tool_calls")
    assert json.loads(attributes["llm.tools.0.tool.json_schema"])["function"]["name"] == "get_weather"
    call = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert attributes[f"{call}.function.name"] == "get_weather"
    assert attributes[f"{call}.function.arguments"] == '{"city":"Oslo"}'


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_chat_anthropic_invoke(api, exporter, is_async):
    api.reply(json_response(anthropic_message()))
    model = chat_anthropic(api)
    message = _run(is_async, lambda: model.invoke("Write a haiku"), lambda: model.ainvoke("Write a haiku"))
    assert message.content == "Hello there"
    attributes = only_span(exporter).attributes
    _common(attributes, "claude-sonnet-4-5-20250929", "end_turn")
    assert attributes["output.value"] == "Hello there"
    assert attributes["llm.token_count.prompt"] == 15  # cache reads and writes included
    assert attributes["llm.token_count.completion"] == 6


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_chat_anthropic_stream(api, exporter, is_async):
    api.reply(anthropic_sse(anthropic_events(["Hello ", "there"])))
    model = chat_anthropic(api)
    chunks = _run(
        is_async, lambda: list(model.stream("Write a haiku")), lambda: _astream(model, "Write a haiku")
    )
    assert "".join(chunk.content for chunk in chunks if isinstance(chunk.content, str)) == "Hello there"
    attributes = only_span(exporter).attributes
    _common(attributes, "claude-sonnet-4-5-20250929", "end_turn")
    assert attributes["output.value"] == "Hello there"
    assert attributes["llm.token_count.completion"] == 42


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_chat_anthropic_tool_calls(api, exporter, is_async):
    api.reply(
        json_response(anthropic_message(content=[{"type": "tool_use", **TOOL_USE}], stop_reason="tool_use"))
    )
    model = chat_anthropic(api).bind_tools([get_weather])
    message = _run(is_async, lambda: model.invoke("Write a haiku"), lambda: model.ainvoke("Write a haiku"))
    assert message.tool_calls[0]["args"] == {"city": "Oslo"}
    attributes = only_span(exporter).attributes
    _common(attributes, "claude-sonnet-4-5-20250929", "tool_use")
    assert json.loads(attributes["llm.tools.0.tool.json_schema"])["name"] == "get_weather"
    call = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert attributes[f"{call}.function.name"] == "get_weather"
    assert json.loads(attributes[f"{call}.function.arguments"]) == {"city": "Oslo"}
