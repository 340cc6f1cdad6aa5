"""Calls that post their request themselves, not through ``create``: OpenAI's
``chat.completions.parse`` and ``responses.parse``, and Anthropic's ``beta.messages`` (create,
stream, parse). Each is one span with the context's ids, and the call's result is untouched."""

from __future__ import annotations

import asyncio
import json

import pydantic
import pytest

from spanloom import using_attributes, using_session

from .fakes import (
    anthropic_events,
    anthropic_message,
    anthropic_sse,
    chat_completion,
    json_response,
    needs_anthropic_beta_parse,
    only_span,
    responses_body,
)

pytestmark = pytest.mark.usefixtures("openai_instrumented", "anthropic_instrumented")

HAIKU = [{"role": "user", "content": "Write a haiku."}]
ANSWER = '{"lines": ["Leaves drift and fall", "quiet pond", "a frog"]}'


class Haiku(pydantic.BaseModel):
    lines: list[str]


def test_chat_completions_parse(api, openai_client, exporter):
    api.reply(json_response(chat_completion(ANSWER)))
    with using_attributes(session_id="s-parse", user_id="u-parse"):
        completion = openai_client.chat.completions.parse(model="m", messages=HAIKU, response_format=Haiku)
    assert completion.choices[0].message.parsed == Haiku(
        lines=["Leaves drift and fall", "quiet pond", "a frog"]
    )
    assert "json_schema" in json.dumps(api.requests[0]["response_format"])  # the SDK sent its schema
    span = only_span(exporter)
    attributes = span.attributes
    assert span.name == "ChatCompletion"
    assert attributes["session.id"] == "s-parse"
    assert attributes["user.id"] == "u-parse"
    assert attributes["llm.input_messages.0.message.content"] == "Write a haiku."
    assert attributes["output.value"] == ANSWER
    assert attributes["llm.token_count.total"] == 19
    assert json.loads(attributes["llm.invocation_parameters"]) == {"model": "m", "response_format": "Haiku"}
    assert json.loads(attributes["input.value"])["response_format"] == "Haiku"


def test_chat_completions_parse_async(api, async_openai_client, exporter):
    api.reply(json_response(chat_completion(ANSWER)))

    async def main():
        with using_session("s-parse-async"):
            return await async_openai_client.chat.completions.parse(
                model="m", messages=HAIKU, response_format=Haiku
            )

    assert asyncio.run(main()).choices[0].message.parsed.lines[0] == "Leaves drift and fall"
    attributes = only_span(exporter).attributes
    assert attributes["session.id"] == "s-parse-async"
    assert attributes["output.value"] == ANSWER


def test_responses_parse(api, openai_client, async_openai_client, exporter):
    api.reply(json_response(responses_body(ANSWER)), json_response(responses_body(ANSWER)))
    with using_session("s-responses-parse"):
        response = openai_client.responses.parse(model="gpt-4.1", input="Write a haiku.", text_format=Haiku)

        async def main():
            return await async_openai_client.responses.parse(
                model="gpt-4.1", input="Write a haiku.", text_format=Haiku
            )

        async_response = asyncio.run(main())
    assert response.output_parsed == async_response.output_parsed == Haiku.model_validate_json(ANSWER)
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["Response", "Response"]
    for span in spans:
        assert span.attributes["session.id"] == "s-responses-parse"
        assert span.attributes["llm.input_messages.0.message.content"] == "Write a haiku."
        assert span.attributes["output.value"] == ANSWER
        assert json.loads(span.attributes["input.value"])["text_format"] == "Haiku"


def test_anthropic_beta_messages_create(api, anthropic_client, exporter):
    api.reply(json_response(anthropic_message("beta hello")))
    with using_attributes(session_id="s-beta", user_id="u-beta"):
        message = anthropic_client.beta.messages.create(
            model="claude-x", max_tokens=10, messages=HAIKU, betas=["context-1m-2025-08-07"]
        )
    assert message.content[0].text == "beta hello"
    span = only_span(exporter)
    attributes = span.attributes
    assert span.name == "Messages"
    assert attributes["session.id"] == "s-beta"
    assert attributes["user.id"] == "u-beta"
    assert attributes["llm.provider"] == "anthropic"
    assert attributes["llm.input_messages.0.message.content"] == "Write a haiku."
    assert attributes["output.value"] == "beta hello"
    assert attributes["llm.token_count.completion"] == 6
    assert json.loads(attributes["llm.invocation_parameters"])["betas"] == ["context-1m-2025-08-07"]


def test_anthropic_beta_messages_create_streamed(api, anthropic_client, exporter):
    api.reply(anthropic_sse(anthropic_events(["Qui", "et"])))
    with using_session("s-beta-stream"):
        stream = anthropic_client.beta.messages.create(model="c", max_tokens=10, messages=HAIKU, stream=True)
    assert exporter.get_finished_spans() == ()  # open until the stream is read
    assert [event.type for event in stream][-1] == "message_stop"
    attributes = only_span(exporter).attributes
    assert attributes["session.id"] == "s-beta-stream"
    assert attributes["output.value"] == "Quiet"
    assert attributes["llm.token_count.completion"] == 42


def test_anthropic_beta_messages_stream_helper(api, anthropic_client, exporter):
    api.reply(anthropic_sse(anthropic_events(["po", "nd"])))
    with using_session("s-beta-helper"):
        manager = anthropic_client.beta.messages.stream(model="c", max_tokens=10, messages=HAIKU)
    assert exporter.get_finished_spans() == ()  # no request before __enter__
    with manager as stream:
        assert "".join(stream.text_stream) == "pond"
    attributes = only_span(exporter).attributes
    assert attributes["session.id"] == "s-beta-helper"  # the context stream() was called in
    assert attributes["output.value"] == "pond"
    assert attributes["llm.finish_reason"] == "end_turn"


def test_anthropic_beta_messages_async_create_and_stream(api, async_anthropic_client, exporter):
    api.reply(json_response(anthropic_message("one")), anthropic_sse(anthropic_events(["t", "wo"])))

    async def main():
        with using_session("s-beta-async"):
            created = await async_anthropic_client.beta.messages.create(
                model="c", max_tokens=5, messages=HAIKU
            )
            async with async_anthropic_client.beta.messages.stream(
                model="c", max_tokens=5, messages=HAIKU
            ) as stream:
                streamed = await stream.get_final_text()
        return created.content[0].text, streamed

    assert asyncio.run(main()) == ("one", "two")
    spans = exporter.get_finished_spans()
    assert [span.attributes["output.value"] for span in spans] == ["one", "two"]
    assert {span.attributes["session.id"] for span in spans} == {"s-beta-async"}


@needs_anthropic_beta_parse
def test_anthropic_beta_messages_parse(api, anthropic_client, exporter):
    api.reply(json_response(anthropic_message(ANSWER)))
    with using_session("s-beta-parse"):
        message = anthropic_client.beta.messages.parse(
            model="c", max_tokens=50, messages=HAIKU, output_format=Haiku
        )
    assert message.parsed_output == Haiku.model_validate_json(ANSWER)
    attributes = only_span(exporter).attributes
    assert attributes["session.id"] == "s-beta-parse"
    assert attributes["output.value"] == ANSWER
    assert json.loads(attributes["llm.invocation_parameters"])["output_format"] == "Haiku"
