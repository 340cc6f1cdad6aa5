"""Anthropic Messages: create (sync, async, stream=True) and the messages.stream() helper."""

from __future__ import annotations

import asyncio
import gc
import json

import anthropic
import pytest
from opentelemetry.trace import StatusCode

from spanloom import using_attributes

from .fakes import anthropic_events, anthropic_message, anthropic_sse, json_response, only_span

pytestmark = pytest.mark.usefixtures("anthropic_instrumented")

HELLO = [{"role": "user", "content": "Say hello"}]
TOOLS = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}]


def test_create(api, anthropic_client, exporter):
    api.reply(json_response(anthropic_message()))
    with using_attributes(session_id="s-a", user_id="u-a"):
        message = anthropic_client.messages.create(
            model="claude-x", max_tokens=100, system="Be nice.", messages=HELLO, stop_sequences=["END"]
        )
    assert message.content[0].text == "Hello there"
    span = only_span(exporter)
    attributes = span.attributes
    assert span.name == "Messages"
    assert span.status.status_code is StatusCode.UNSET  # success: left unset, per the OTel spec
    assert attributes["session.id"] == "s-a"
    assert attributes["user.id"] == "u-a"
    assert attributes["llm.provider"] == attributes["gen_ai.system"] == "anthropic"
    assert attributes["llm.input_messages.0.message.role"] == "system"
    assert attributes["llm.input_messages.0.message.content"] == "Be nice."
    assert attributes["llm.input_messages.1.message.content"] == "Say hello"
    assert attributes["llm.output_messages.0.message.role"] == "assistant"
    assert attributes["llm.output_messages.0.message.content"] == "Hello there"
    assert attributes["output.value"] == "Hello there"
    assert attributes["llm.model_name"] == "claude-sonnet-4-5-20250929"
    assert attributes["gen_ai.request.model"] == "claude-x"
    assert json.loads(attributes["llm.invocation_parameters"]) == {
        "model": "claude-x",
        "max_tokens": 100,
        "stop_sequences": ["END"],
    }
    # Anthropic's input_tokens excludes cached tokens; the prompt count includes them
    assert attributes["llm.token_count.prompt"] == attributes["gen_ai.usage.input_tokens"] == 15
    assert attributes["llm.token_count.completion"] == 6
    assert attributes["llm.token_count.total"] == 21
    assert attributes["llm.token_count.prompt_details.cache_read"] == 3
    assert attributes["llm.token_count.prompt_details.cache_write"] == 2
    assert attributes["llm.finish_reason"] == "end_turn"


def test_tool_use_tool_results_and_images(api, anthropic_client, exporter):
    content = [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    api.reply(json_response(anthropic_message(content=content, stop_reason="tool_use")))
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    anthropic_client.messages.create(model="claude", max_tokens=10, messages=messages, tools=TOOLS)

    attributes = only_span(exporter).attributes
    contents = "llm.input_messages.0.message.contents"
    assert attributes[f"{contents}.0.message_content.text"] == "What is this?"
    assert attributes[f"{contents}.1.message_content.type"] == "image"
    assert attributes[f"{contents}.1.message_content.image.image.url"] == "data:image/png;base64,iVBORw0K"
    assert attributes["llm.input_messages.1.message.tool_calls.0.tool_call.function.name"] == "get_weather"
    assert attributes["llm.input_messages.2.message.role"] == "tool"
    assert attributes["llm.input_messages.2.message.tool_call_id"] == "toolu_1"
    assert attributes["llm.input_messages.2.message.content"] == "sunny"
    assert json.loads(attributes["llm.tools.0.tool.json_schema"]) == TOOLS[0]
    out = "llm.output_messages.0.message"
    assert attributes[f"{out}.content"] == "Checking."
    assert attributes[f"{out}.tool_calls.0.tool_call.id"] == "toolu_2"
    assert json.loads(attributes[f"{out}.tool_calls.0.tool_call.function.arguments"]) == {"city": "Oslo"}
    assert attributes["llm.finish_reason"] == "tool_use"


def test_error(api, anthropic_client, exporter):
    api.reply(json_response({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, 529))
    with pytest.raises(anthropic.APIStatusError) as caught:
        anthropic_client.messages.create(model="claude", max_tokens=10, messages=HELLO)
    assert caught.value.status_code == 529
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[0].attributes["exception.message"] == str(caught.value)


def test_async_create(api, async_anthropic_client, exporter):
    api.reply(json_response(anthropic_message("async hello")))

    async def main():
        with using_attributes(session_id="s-async"):
            return await async_anthropic_client.messages.create(model="claude", max_tokens=10, messages=HELLO)

    assert asyncio.run(main()).content[0].text == "async hello"
    span = only_span(exporter)
    assert span.attributes["session.id"] == "s-async"
    assert span.attributes["output.value"] == "async hello"


def test_create_stream(api, anthropic_client, exporter):
    api.reply(anthropic_sse(anthropic_events(["Hel", "lo"])))
    stream = anthropic_client.messages.create(model="claude", max_tokens=10, messages=HELLO, stream=True)
    assert isinstance(stream, anthropic.Stream)
    kinds = [event.type for event in stream]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    attributes = only_span(exporter).attributes
    assert attributes["output.value"] == "Hello"
    assert attributes["llm.token_count.prompt"] == 13
    assert attributes["llm.token_count.completion"] == 42
    assert attributes["llm.finish_reason"] == "end_turn"


def test_stream_helper_text_stream_and_final_message(api, anthropic_client, exporter):
    tool = {"id": "toolu_7", "name": "get_weather", "input": {"city": "Lima"}}
    api.reply(anthropic_sse(anthropic_events(["Let me ", "check."], tool=tool)))
    with using_attributes(user_id="u-stream"):
        manager = anthropic_client.messages.stream(model="claude", max_tokens=10, messages=HELLO, tools=TOOLS)
    assert exporter.get_finished_spans() == ()  # no request before __enter__
    with manager as stream:
        assert "".join(stream.text_stream) == "Let me check."
        final = stream.get_final_message()
    assert final.content[1].input == {"city": "Lima"}
    span = only_span(exporter)
    attributes = span.attributes
    assert span.status.status_code is StatusCode.UNSET  # success: left unset, per the OTel spec
    assert attributes["user.id"] == "u-stream"
    assert attributes["llm.output_messages.0.message.content"] == "Let me check."
    call = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert attributes[f"{call}.id"] == "toolu_7"
    assert json.loads(attributes[f"{call}.function.arguments"]) == {"city": "Lima"}
    assert attributes["llm.finish_reason"] == "tool_use"


def test_stream_helper_until_done(api, anthropic_client, exporter):
    api.reply(anthropic_sse(anthropic_events(["done"])))
    with anthropic_client.messages.stream(model="claude", max_tokens=10, messages=HELLO) as stream:
        stream.until_done()
        assert stream.get_final_text() == "done"
    assert only_span(exporter).attributes["output.value"] == "done"


def test_stream_helper_error_at_enter(api, anthropic_client, exporter):
    api.reply(
        json_response({"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}, 400)
    )
    with (
        pytest.raises(anthropic.BadRequestError),
        anthropic_client.messages.stream(model="claude", max_tokens=10, messages=HELLO),
    ):
        pass
    assert only_span(exporter).status.status_code is StatusCode.ERROR


def test_async_stream_helper(api, async_anthropic_client, exporter):
    api.reply(anthropic_sse(anthropic_events(["a", "b"])))

    async def main():
        async with async_anthropic_client.messages.stream(
            model="claude", max_tokens=10, messages=HELLO
        ) as stream:
            texts = [text async for text in stream.text_stream]
            message = await stream.get_final_message()
        return texts, message

    texts, message = asyncio.run(main())
    assert texts == ["a", "b"]
    assert message.content[0].text == "ab"
    assert only_span(exporter).attributes["output.value"] == "ab"


def test_async_create_stream(api, async_anthropic_client, exporter):
    api.reply(anthropic_sse(anthropic_events(["x", "y"])))

    async def main():
        stream = await async_anthropic_client.messages.create(
            model="claude", max_tokens=10, messages=HELLO, stream=True
        )
        async with stream:
            return [event async for event in stream]

    assert len(asyncio.run(main())) == 7
    assert only_span(exporter).attributes["output.value"] == "xy"


def test_stream_helper_closed_half_way(api, anthropic_client, exporter):
    api.reply(anthropic_sse(anthropic_events(["one ", "two ", "three"])))
    with anthropic_client.messages.stream(model="claude", max_tokens=10, messages=HELLO) as stream:
        for text in stream.text_stream:
            assert text == "one "
            break
    span = only_span(exporter)
    assert span.attributes["output.value"] == "one "
    assert span.status.status_code is StatusCode.UNSET


def test_abandoned_stream_ends_its_span(api, anthropic_client, exporter):
    api.reply(anthropic_sse(anthropic_events(["one ", "two"])))
    stream = anthropic_client.messages.create(model="claude", max_tokens=10, messages=HELLO, stream=True)
    next(stream)
    next(stream)
    next(stream)
    del stream
    gc.collect()
    span = only_span(exporter)
    assert span.attributes["output.value"] == "one "
