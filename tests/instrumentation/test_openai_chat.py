"""OpenAI chat completions: plain, async, streamed, tools, images, errors."""

from __future__ import annotations

import asyncio
import gc
import json
import math

import openai
import pytest
from opentelemetry.trace import StatusCode

from spanloom import using_attributes
from spanloom.instrumentation._messages import to_json

from .fakes import (
    chat_chunks,
    chat_completion,
    json_response,
    only_span,
    openai_sse,
)

pytestmark = pytest.mark.usefixtures("openai_instrumented")

HAIKU = [{"role": "user", "content": "Write a haiku."}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_nan_in_recorded_json_is_spelled_as_otlp_json_does():
    # NaN is not JSON: a backend parsing input.value or llm.invocation_parameters strictly would
    # drop the attribute. (The OpenAI SDK itself refuses to send NaN; other SDKs and the tracer's
    # decorators record whatever they are given.)
    text = to_json({"temperature": math.nan, "stop": [math.inf, -math.inf], "n": 1.5})
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text}"))
    assert parsed == {"temperature": "NaN", "stop": ["Infinity", "-Infinity"], "n": 1.5}


def test_create_records_request_response_and_usage(api, openai_client, exporter):
    api.reply(json_response(chat_completion()))
    with using_attributes(session_id="s-1", user_id="u-1", metadata={"k": "v"}, tags=["t"]):
        response = openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=HAIKU, max_tokens=20, temperature=0.5
        )

    assert response.choices[0].message.content == "Leaves drift and fall"
    span = only_span(exporter)
    attributes = span.attributes
    assert span.name == "ChatCompletion"
    assert span.status.status_code is StatusCode.UNSET  # success: left unset, per the OTel spec
    assert attributes["openinference.span.kind"] == "LLM"
    assert attributes["gen_ai.span.kind"] == "LLM"
    assert attributes["llm.provider"] == attributes["llm.system"] == attributes["gen_ai.system"] == "openai"
    assert attributes["session.id"] == "s-1"
    assert attributes["user.id"] == "u-1"
    assert json.loads(attributes["metadata"]) == {"k": "v"}
    assert tuple(attributes["tag.tags"]) == ("t",)
    assert attributes["llm.model_name"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert json.loads(attributes["llm.invocation_parameters"]) == {
        "model": "gpt-4o-mini",
        "max_tokens": 20,
        "temperature": 0.5,
    }
    assert attributes["llm.input_messages.0.message.role"] == "user"
    assert attributes["llm.input_messages.0.message.content"] == "Write a haiku."
    assert attributes["llm.output_messages.0.message.role"] == "assistant"
    assert attributes["llm.output_messages.0.message.content"] == "Leaves drift and fall"
    assert json.loads(attributes["input.value"])["messages"] == HAIKU
    assert attributes["input.mime_type"] == "application/json"
    assert attributes["output.value"] == "Leaves drift and fall"
    assert attributes["llm.token_count.prompt"] == attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["llm.token_count.completion"] == attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["llm.token_count.total"] == 19
    assert attributes["llm.token_count.prompt_details.cache_read"] == 4
    assert attributes["llm.token_count.completion_details.reasoning"] == 2
    assert attributes["llm.finish_reason"] == "stop"
    assert api.requests[0]["messages"] == HAIKU


def test_tool_definitions_and_tool_calls(api, openai_client, exporter):
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    }
    api.reply(
        json_response(chat_completion(None, message={"tool_calls": [call]}, finish_reason="tool_calls"))
    )
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{**call, "function": {**call["function"]}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    openai_client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)

    attributes = only_span(exporter).attributes
    assert json.loads(attributes["llm.tools.0.tool.json_schema"]) == TOOLS[0]
    prefix = "llm.input_messages.1.message.tool_calls.0.tool_call"
    assert attributes[f"{prefix}.id"] == "call_1"
    assert attributes[f"{prefix}.function.name"] == "get_weather"
    assert attributes[f"{prefix}.function.arguments"] == '{"city":"Oslo"}'
    assert attributes["llm.input_messages.2.message.role"] == "tool"
    assert attributes["llm.input_messages.2.message.tool_call_id"] == "call_1"
    out = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert attributes[f"{out}.function.name"] == "get_weather"
    assert attributes[f"{out}.function.arguments"] == '{"city":"Oslo"}'
    assert attributes["llm.finish_reason"] == "tool_calls"
    assert "llm.tools.0.tool.json_schema" not in json.loads(attributes["llm.invocation_parameters"])


def test_multipart_content_with_image(api, openai_client, exporter):
    api.reply(json_response(chat_completion("A cat")))
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    openai_client.chat.completions.create(model="gpt-4o", messages=messages)

    attributes = only_span(exporter).attributes
    prefix = "llm.input_messages.0.message.contents"
    assert attributes[f"{prefix}.0.message_content.type"] == "text"
    assert attributes[f"{prefix}.0.message_content.text"] == "What is this?"
    assert attributes[f"{prefix}.1.message_content.type"] == "image"
    assert attributes[f"{prefix}.1.message_content.image.image.url"] == "https://example.com/cat.png"


def test_generator_of_messages_still_reaches_the_provider(api, openai_client, exporter):
    api.reply(json_response(chat_completion()))
    openai_client.chat.completions.create(model="m", messages=(message for message in HAIKU))
    assert api.requests[0]["messages"] == HAIKU
    assert only_span(exporter).attributes["llm.input_messages.0.message.content"] == "Write a haiku."


@pytest.mark.parametrize("status", [400, 500])
def test_error_is_recorded_and_reraised_unchanged(api, openai_client, exporter, status):
    api.reply(json_response({"error": {"message": "bad", "type": "invalid_request_error"}}, status=status))
    with pytest.raises(openai.APIStatusError) as caught:
        openai_client.chat.completions.create(model="gpt-4o", messages=HAIKU)

    assert caught.value.status_code == status
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[0].name == "exception"
    assert span.events[0].attributes["exception.type"].endswith(type(caught.value).__name__)
    assert span.events[0].attributes["exception.message"] == str(caught.value)
    assert span.attributes["llm.input_messages.0.message.content"] == "Write a haiku."


def test_async_create(api, async_openai_client, exporter):
    api.reply(json_response(chat_completion("async haiku")))

    async def main():
        with using_attributes(session_id="s-async"):
            return await async_openai_client.chat.completions.create(model="m", messages=HAIKU)

    response = asyncio.run(main())
    assert response.choices[0].message.content == "async haiku"
    span = only_span(exporter)
    assert span.attributes["session.id"] == "s-async"
    assert span.attributes["output.value"] == "async haiku"


def test_async_error(api, async_openai_client, exporter):
    api.reply(json_response({"error": {"message": "boom"}}, status=500))

    async def main():
        await async_openai_client.chat.completions.create(model="m", messages=HAIKU)

    with pytest.raises(openai.InternalServerError):
        asyncio.run(main())
    assert only_span(exporter).status.status_code is StatusCode.ERROR


def test_stream_with_usage_chunk(api, openai_client, exporter):
    api.reply(openai_sse(chat_chunks(["Old ", "pond"])))
    with using_attributes(session_id="s-stream"):
        stream = openai_client.chat.completions.create(
            model="m", messages=HAIKU, stream=True, stream_options={"include_usage": True}
        )
    assert isinstance(stream, openai.Stream)
    assert exporter.get_finished_spans() == ()  # open until the stream is read
    texts = [chunk.choices[0].delta.content for chunk in stream if chunk.choices]

    assert texts == ["Old ", "pond", None]
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.UNSET  # success: left unset, per the OTel spec
    assert span.attributes["session.id"] == "s-stream"
    assert span.attributes["llm.output_messages.0.message.content"] == "Old pond"
    assert span.attributes["output.value"] == "Old pond"
    assert span.attributes["llm.token_count.prompt"] == 9
    assert span.attributes["llm.token_count.completion"] == 50
    assert span.attributes["llm.token_count.total"] == 59
    assert span.attributes["llm.finish_reason"] == "stop"


def test_stream_next_and_context_manager(api, openai_client, exporter):
    api.reply(openai_sse(chat_chunks(["a", "b", "c"])))
    with openai_client.chat.completions.create(model="m", messages=HAIKU, stream=True) as stream:
        first = next(stream)
        assert first.choices[0].delta.content == "a"
    span = only_span(exporter)  # __exit__ closed it: ended with what was read
    assert span.attributes["llm.output_messages.0.message.content"] == "a"
    assert stream.response.is_closed


def test_stream_tool_call_arguments_are_joined(api, openai_client, exporter):
    calls = [
        {
            "index": 0,
            "id": "call_9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"city":'}},
        {"index": 0, "function": {"arguments": '"Rome"}'}},
    ]
    api.reply(openai_sse(chat_chunks([], tool_calls=calls)))
    for _ in openai_client.chat.completions.create(model="m", messages=HAIKU, tools=TOOLS, stream=True):
        pass
    attributes = only_span(exporter).attributes
    prefix = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert attributes[f"{prefix}.id"] == "call_9"
    assert attributes[f"{prefix}.function.name"] == "get_weather"
    assert attributes[f"{prefix}.function.arguments"] == '{"city":"Rome"}'
    assert attributes["llm.finish_reason"] == "tool_calls"


def test_long_stream_is_folded_in_batches(api, openai_client, exporter):
    words = [f"w{i} " for i in range(100)]  # several FOLD_EVERY batches, usage alone in the last
    api.reply(openai_sse(chat_chunks(words)))
    stream = openai_client.chat.completions.create(
        model="m", messages=HAIKU, stream=True, stream_options={"include_usage": True}
    )
    assert len(list(stream)) == 102
    attributes = only_span(exporter).attributes
    assert attributes["output.value"] == "".join(words)
    assert attributes["llm.output_messages.0.message.role"] == "assistant"
    assert attributes["llm.finish_reason"] == "stop"
    assert attributes["llm.token_count.total"] == 59


def test_stream_with_several_choices(api, openai_client, exporter):
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}

    def chunk(index, delta, finish=None):
        return {**base, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}

    chunks = [
        chunk(0, {"role": "assistant", "content": "first "}),
        chunk(1, {"role": "assistant", "content": "second "}),
        chunk(0, {"content": "answer"}),
        chunk(1, {"content": "answer"}),
        chunk(0, {}, "stop"),
        chunk(1, {}, "length"),
    ]
    api.reply(openai_sse(chunks))
    for _ in openai_client.chat.completions.create(model="m", messages=HAIKU, n=2, stream=True):
        pass
    attributes = only_span(exporter).attributes
    assert attributes["llm.output_messages.0.message.content"] == "first answer"
    assert attributes["llm.output_messages.1.message.content"] == "second answer"
    assert attributes["llm.finish_reason"] == "stop"
    assert json.loads(attributes["output.value"])[1]["content"] == "second answer"


def test_stream_records_the_request_as_it_was_sent(api, openai_client, exporter):
    api.reply(openai_sse(chat_chunks(["Old pond"])))
    messages = [{"role": "user", "content": "Write a haiku."}]
    stream = openai_client.chat.completions.create(model="m", messages=messages, stream=True)
    first = next(iter(stream))
    # The caller moves on to its next turn before the stream (and its span) ends.
    messages.append({"role": "assistant", "content": first.choices[0].delta.content})
    stream.close()
    attributes = only_span(exporter).attributes
    assert attributes["llm.input_messages.0.message.content"] == "Write a haiku."
    assert "llm.input_messages.1.message.role" not in attributes
    assert len(json.loads(attributes["input.value"])["messages"]) == 1


def test_stream_close_half_way_ends_the_span(api, openai_client, exporter):
    api.reply(openai_sse(chat_chunks(["one ", "two ", "three"])))
    stream = openai_client.chat.completions.create(model="m", messages=HAIKU, stream=True)
    iterator = iter(stream)
    next(iterator)
    stream.close()
    span = only_span(exporter)
    assert span.attributes["llm.output_messages.0.message.content"] == "one "
    assert span.status.status_code is StatusCode.UNSET


def test_abandoned_stream_ends_its_span_when_collected(api, openai_client, exporter):
    api.reply(openai_sse(chat_chunks(["one ", "two"])))
    stream = openai_client.chat.completions.create(model="m", messages=HAIKU, stream=True)
    next(stream)
    del stream
    gc.collect()
    span = only_span(exporter)
    assert span.attributes["llm.output_messages.0.message.content"] == "one "


def test_never_read_stream_ends_its_span_when_collected(api, openai_client, exporter):
    api.reply(openai_sse(chat_chunks(["x"])))
    openai_client.chat.completions.create(model="m", messages=HAIKU, stream=True)
    gc.collect()
    assert only_span(exporter).name == "ChatCompletion"


def test_error_event_mid_stream(api, openai_client, exporter):
    chunks = [*chat_chunks(["partial"], usage=False)[:1], {"error": {"message": "overloaded"}}]
    api.reply(openai_sse(chunks))
    stream = openai_client.chat.completions.create(model="m", messages=HAIKU, stream=True)
    with pytest.raises(openai.APIError, match="overloaded"):
        list(stream)
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["llm.output_messages.0.message.content"] == "partial"


def test_stream_helper(api, openai_client, exporter):
    api.reply(openai_sse(chat_chunks(["helper ", "text"])))
    with openai_client.chat.completions.stream(model="m", messages=HAIKU) as stream:
        completion = stream.get_final_completion()
    assert completion.choices[0].message.content == "helper text"
    attributes = only_span(exporter).attributes
    assert attributes["output.value"] == "helper text"
    assert "omit" not in attributes["llm.invocation_parameters"].lower()


def test_async_stream(api, async_openai_client, exporter):
    api.reply(openai_sse(chat_chunks(["async ", "stream"])))

    async def main():
        stream = await async_openai_client.chat.completions.create(
            model="m", messages=HAIKU, stream=True, stream_options={"include_usage": True}
        )
        assert isinstance(stream, openai.AsyncStream)
        async with stream:
            return [chunk async for chunk in stream]

    chunks = asyncio.run(main())
    assert len(chunks) == 4
    span = only_span(exporter)
    assert span.attributes["output.value"] == "async stream"
    assert span.attributes["llm.token_count.total"] == 59


def test_async_stream_closed_early(api, async_openai_client, exporter):
    api.reply(openai_sse(chat_chunks(["x", "y", "z"])))

    async def main():
        stream = await async_openai_client.chat.completions.create(model="m", messages=HAIKU, stream=True)
        await stream.__anext__()
        await stream.close()

    asyncio.run(main())
    assert only_span(exporter).attributes["output.value"] == "x"


def test_with_raw_response_still_works(api, openai_client, exporter):
    api.reply(json_response(chat_completion("raw")))
    raw = openai_client.chat.completions.with_raw_response.create(model="m", messages=HAIKU)
    assert raw.parse().choices[0].message.content == "raw"
    span = only_span(exporter)
    assert span.attributes["llm.input_messages.0.message.content"] == "Write a haiku."
