"""OpenAI Responses API and embeddings."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry.trace import StatusCode

from spanloom import using_session

from .fakes import embedding_body, json_response, only_span, openai_sse, responses_body, responses_events

pytestmark = pytest.mark.usefixtures("openai_instrumented")


def test_responses_create(api, openai_client, exporter):
    api.reply(json_response(responses_body()))
    with using_session("s-resp"):
        response = openai_client.responses.create(
            model="gpt-4.1", instructions="Be brief.", input="Say hi", max_output_tokens=50
        )
    assert response.output_text == "Hi from responses"
    span = only_span(exporter)
    attributes = span.attributes
    assert span.name == "Response"
    assert attributes["session.id"] == "s-resp"
    assert attributes["llm.input_messages.0.message.role"] == "system"
    assert attributes["llm.input_messages.0.message.content"] == "Be brief."
    assert attributes["llm.input_messages.1.message.role"] == "user"
    assert attributes["llm.input_messages.1.message.content"] == "Say hi"
    assert attributes["llm.output_messages.0.message.role"] == "assistant"
    assert attributes["llm.output_messages.0.message.contents.0.message_content.text"] == "Hi from responses"
    assert attributes["output.value"] == "Hi from responses"
    assert attributes["llm.model_name"] == "gpt-4.1-2025-04-14"
    assert attributes["llm.token_count.prompt"] == 20
    assert attributes["llm.token_count.completion"] == 8
    assert attributes["llm.token_count.total"] == 28
    assert attributes["llm.token_count.prompt_details.cache_read"] == 5
    assert attributes["llm.token_count.completion_details.reasoning"] == 3
    assert attributes["llm.finish_reason"] == "completed"


def test_responses_items_tools_and_images(api, openai_client, exporter):
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "lookup",
        "arguments": '{"q":"x"}',
    }
    api.reply(json_response(responses_body(output=[call])))
    items = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Look at this"},
                {"type": "input_image", "image_url": "https://example.com/a.png"},
            ],
        },
        {"type": "function_call_output", "call_id": "call_0", "output": "42"},
    ]
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    openai_client.responses.create(model="gpt-4.1", input=items, tools=tools)

    attributes = only_span(exporter).attributes
    contents = "llm.input_messages.0.message.contents"
    assert attributes[f"{contents}.0.message_content.text"] == "Look at this"
    assert attributes[f"{contents}.1.message_content.image.image.url"] == "https://example.com/a.png"
    assert attributes["llm.input_messages.1.message.role"] == "tool"
    assert attributes["llm.input_messages.1.message.tool_call_id"] == "call_0"
    assert json.loads(attributes["llm.tools.0.tool.json_schema"])["name"] == "lookup"
    out = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert attributes[f"{out}.id"] == "call_1"
    assert attributes[f"{out}.function.name"] == "lookup"
    assert attributes[f"{out}.function.arguments"] == '{"q":"x"}'


def test_responses_async(api, async_openai_client, exporter):
    api.reply(json_response(responses_body("async")))

    async def main():
        return await async_openai_client.responses.create(model="gpt-4.1", input="hi")

    assert asyncio.run(main()).output_text == "async"
    assert only_span(exporter).attributes["output.value"] == "async"


def test_responses_stream(api, openai_client, exporter):
    api.reply(openai_sse(responses_events(["Hel", "lo"])))
    stream = openai_client.responses.create(model="gpt-4.1", input="hi", stream=True)
    kinds = [event.type for event in stream]
    assert kinds[-1] == "response.completed"
    attributes = only_span(exporter).attributes
    assert attributes["output.value"] == "Hello"
    assert attributes["llm.token_count.total"] == 28


def test_responses_stream_helper_and_async_stream(api, openai_client, async_openai_client, exporter):
    api.reply(openai_sse(responses_events(["a", "b"])), openai_sse(responses_events(["c"])))
    with openai_client.responses.stream(model="gpt-4.1", input="hi") as stream:
        assert stream.get_final_response().output_text == "ab"

    async def main():
        stream = await async_openai_client.responses.create(model="gpt-4.1", input="hi", stream=True)
        return [event async for event in stream]

    asyncio.run(main())
    outputs = sorted(span.attributes["output.value"] for span in exporter.get_finished_spans())
    assert outputs == ["ab", "c"]


def test_responses_stream_closed_early_keeps_text_so_far(api, openai_client, exporter):
    api.reply(openai_sse(responses_events(["first", "second"])))
    stream = openai_client.responses.create(model="gpt-4.1", input="hi", stream=True)
    while next(stream).type != "response.output_text.delta":
        pass
    stream.close()
    span = only_span(exporter)
    assert span.attributes["output.value"] == "first"
    assert span.status.status_code is StatusCode.UNSET


def test_embeddings(api, openai_client, exporter):
    api.reply(json_response(embedding_body()))
    with using_session("s-emb"):
        result = openai_client.embeddings.create(
            model="text-embedding-3-small", input=["hello", "world"], encoding_format="float"
        )
    assert len(result.data) == 2
    span = only_span(exporter)
    attributes = span.attributes
    assert span.name == "CreateEmbeddings"
    assert attributes["openinference.span.kind"] == "EMBEDDING"
    assert attributes["session.id"] == "s-emb"
    assert attributes["embedding.model_name"] == "text-embedding-3-small"
    assert attributes["embedding.embeddings.0.embedding.text"] == "hello"
    assert attributes["embedding.embeddings.1.embedding.text"] == "world"
    assert tuple(attributes["embedding.embeddings.1.embedding.vector"]) == (0.5, 0.5, 0.5, 0.5)
    assert attributes["llm.token_count.prompt"] == 6


def test_embeddings_async_single_text(api, async_openai_client, exporter):
    api.reply(json_response(embedding_body(count=1)))

    async def main():
        await async_openai_client.embeddings.create(model="text-embedding-3-small", input="just one")

    asyncio.run(main())
    attributes = only_span(exporter).attributes
    assert attributes["input.value"] == "just one"
    assert attributes["embedding.embeddings.0.embedding.text"] == "just one"
    assert len(attributes["embedding.embeddings.0.embedding.vector"]) == 4
