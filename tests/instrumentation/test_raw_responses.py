"""``with_raw_response`` and ``with_streaming_response``: the span of every covered operation is the
plain call's span (model, tokens, output, finish reason, tool calls), sync and async, and what
the caller gets back is the SDK's response, unchanged.

Each case makes the plain call and the raw one over the same canned answer and compares the two
spans attribute by attribute.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic
import pytest
from opentelemetry.trace import StatusCode

from spanloom import using_session

from .fakes import (
    Canned,
    anthropic_events,
    anthropic_message,
    anthropic_sse,
    chat_chunks,
    chat_completion,
    embedding_body,
    json_response,
    needs_anthropic_beta_parse,
    only_span,
    openai_sse,
    responses_body,
    responses_events,
)

pytestmark = pytest.mark.usefixtures("openai_instrumented", "anthropic_instrumented")

HAIKU = [{"role": "user", "content": "Write a haiku."}]
ANSWER = '{"lines": ["Leaves drift and fall", "quiet pond", "a frog"]}'
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
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}
CLAUDE_TOOLS = [{"name": "get_weather", "input_schema": {"type": "object"}}]
TOOL_USE = {"id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}


class Haiku(pydantic.BaseModel):
    lines: list[str]


def unread(canned: Canned) -> Callable[[Any], Any]:
    """The same answer with its body unread until the client reads it, as off the network (a
    Response built from bytes is read at once, which would hide the difference), in the HTTP
    library of the request."""

    def answer(request: Any) -> Any:
        library = importlib.import_module(type(request).__module__.partition(".")[0])
        return library.Response(
            canned.status,
            headers={"content-type": canned.content_type},
            stream=library.ByteStream(canned.content),
        )

    return answer


@dataclass(frozen=True)
class Case:
    name: str
    sdk: str  # "openai" or "anthropic": which client fixture
    resource: Callable[[Any], Any]  # client -> the resource object
    method: str
    kwargs: dict[str, Any]
    answer: Callable[[], Canned]
    stream: bool = False
    expect: dict[str, Any] = field(default_factory=dict)  # what the span must hold


CASES = [
    Case(
        "chat",
        "openai",
        lambda c: c.chat.completions,
        "create",
        {"model": "gpt-4o-mini", "messages": HAIKU, "max_tokens": 20},
        lambda: json_response(chat_completion()),
        expect={"output.value": "Leaves drift and fall", "llm.token_count.total": 19},
    ),
    Case(
        "chat tool calls",
        "openai",
        lambda c: c.chat.completions,
        "create",
        {"model": "gpt-4o", "messages": HAIKU, "tools": TOOLS},
        lambda: json_response(
            chat_completion(None, message={"tool_calls": [CALL]}, finish_reason="tool_calls")
        ),
        expect={
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
            "llm.finish_reason": "tool_calls",
        },
    ),
    Case(
        "chat stream",
        "openai",
        lambda c: c.chat.completions,
        "create",
        {
            "model": "gpt-4o-mini",
            "messages": HAIKU,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        lambda: openai_sse(chat_chunks(["Leaves ", "drift"])),
        stream=True,
        expect={"output.value": "Leaves drift", "llm.token_count.completion": 50},
    ),
    Case(
        "chat stream tool calls",
        "openai",
        lambda c: c.chat.completions,
        "create",
        {"model": "gpt-4o", "messages": HAIKU, "tools": TOOLS, "stream": True},
        lambda: openai_sse(chat_chunks([], tool_calls=[{"index": 0, **CALL}])),
        stream=True,
        expect={"llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"city":"Oslo"}'},
    ),
    Case(
        "chat parse",
        "openai",
        lambda c: c.chat.completions,
        "parse",
        {"model": "gpt-4o-mini", "messages": HAIKU, "response_format": Haiku},
        lambda: json_response(chat_completion(ANSWER)),
        expect={"output.value": ANSWER, "llm.model_name": "gpt-4o-mini-2024-07-18"},
    ),
    Case(
        "responses",
        "openai",
        lambda c: c.responses,
        "create",
        {"model": "gpt-4.1", "input": "Write a haiku."},
        lambda: json_response(responses_body()),
        expect={"output.value": "Hi from responses", "llm.token_count.prompt": 20},
    ),
    Case(
        "responses stream",
        "openai",
        lambda c: c.responses,
        "create",
        {"model": "gpt-4.1", "input": "Write a haiku.", "stream": True},
        lambda: openai_sse(responses_events(["Hi ", "there"])),
        stream=True,
        expect={"output.value": "Hi there", "llm.finish_reason": "completed"},
    ),
    Case(
        "responses parse",
        "openai",
        lambda c: c.responses,
        "parse",
        {"model": "gpt-4.1", "input": "Write a haiku.", "text_format": Haiku},
        lambda: json_response(responses_body(ANSWER)),
        expect={"output.value": ANSWER},
    ),
    Case(
        "embeddings",
        "openai",
        lambda c: c.embeddings,
        "create",
        {"model": "text-embedding-3-small", "input": ["a", "b"]},
        lambda: json_response(embedding_body()),
        expect={"embedding.embeddings.1.embedding.vector": (0.5, 0.5, 0.5, 0.5), "llm.token_count.prompt": 6},
    ),
    Case(
        "messages",
        "anthropic",
        lambda c: c.messages,
        "create",
        {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HAIKU},
        lambda: json_response(anthropic_message()),
        expect={"output.value": "Hello there", "llm.token_count.prompt": 15, "llm.finish_reason": "end_turn"},
    ),
    Case(
        "messages tool use",
        "anthropic",
        lambda c: c.messages,
        "create",
        {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HAIKU, "tools": CLAUDE_TOOLS},
        lambda: json_response(
            anthropic_message(content=[{"type": "tool_use", **TOOL_USE}], stop_reason="tool_use")
        ),
        expect={
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"city": "Oslo"}',
            "llm.finish_reason": "tool_use",
        },
    ),
    Case(
        "messages stream",
        "anthropic",
        lambda c: c.messages,
        "create",
        {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HAIKU, "stream": True},
        lambda: anthropic_sse(anthropic_events(["Hello ", "there"], tool=TOOL_USE)),
        stream=True,
        expect={"llm.token_count.completion": 42, "llm.finish_reason": "tool_use"},
    ),
    Case(
        "beta messages",
        "anthropic",
        lambda c: c.beta.messages,
        "create",
        {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HAIKU},
        lambda: json_response(anthropic_message()),
        expect={"output.value": "Hello there"},
    ),
    Case(
        "beta messages stream",
        "anthropic",
        lambda c: c.beta.messages,
        "create",
        {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HAIKU, "stream": True},
        lambda: anthropic_sse(anthropic_events(["Hello ", "there"])),
        stream=True,
        expect={"output.value": "Hello there"},
    ),
    Case(
        "beta messages parse",
        "anthropic",
        lambda c: c.beta.messages,
        "parse",
        {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HAIKU, "output_format": Haiku},
        lambda: json_response(anthropic_message(ANSWER)),
        expect={"output.value": ANSWER},
    ),
]


@pytest.fixture
def clients(openai_client, async_openai_client, anthropic_client, async_anthropic_client):
    return {
        ("openai", False): openai_client,
        ("openai", True): async_openai_client,
        ("anthropic", False): anthropic_client,
        ("anthropic", True): async_anthropic_client,
    }


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json", warnings=False) if hasattr(value, "model_dump") else value


def _consume(value: Any) -> Any:
    """What the caller would hold: the parsed object, or the chunks of a stream."""
    if hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict, pydantic.BaseModel)):
        return [_dump(chunk) for chunk in value]
    return _dump(value)


async def _aconsume(value: Any) -> Any:
    if hasattr(value, "__aiter__"):
        return [_dump(chunk) async for chunk in value]
    return _consume(value)


async def _maybe(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


def _plain(case: Case, client: Any, is_async: bool) -> Any:
    method = getattr(case.resource(client), case.method)
    if not is_async:
        return _consume(method(**case.kwargs))

    async def main() -> Any:
        return await _aconsume(await method(**case.kwargs))

    return asyncio.run(main())


def _raw(case: Case, client: Any, is_async: bool) -> Any:
    """with_raw_response: the caller reads the headers, then parses, as LangChain does."""
    method = getattr(case.resource(client).with_raw_response, case.method)
    if not is_async:
        raw = method(**case.kwargs)
        assert raw.http_response.status_code == 200
        return _consume(raw.parse())

    async def main() -> Any:
        raw = await method(**case.kwargs)
        assert raw.http_response.status_code == 200
        return await _aconsume(await _maybe(raw.parse()))

    return asyncio.run(main())


def _streamed(case: Case, client: Any, is_async: bool) -> Any:
    """with_streaming_response: the body is the caller's to read, inside the block."""
    method = getattr(case.resource(client).with_streaming_response, case.method)
    if not is_async:
        with method(**case.kwargs) as response:
            return _consume(response.parse())

    async def main() -> Any:
        async with method(**case.kwargs) as response:
            return await _aconsume(await response.parse())

    return asyncio.run(main())


def _span_of(exporter, run: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    exporter.clear()
    with using_session("s-raw"):
        value = run()
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.UNSET
    return value, dict(span.attributes)


# responses.parse and beta.messages.parse have no with_streaming_response form
PAIRS = [
    pytest.param(
        case,
        way,
        id=f"{case.name}-{way_name}",
        marks=[needs_anthropic_beta_parse] if case.name == "beta messages parse" else [],
    )
    for case in CASES
    for way, way_name in ((_raw, "with_raw_response"), (_streamed, "with_streaming_response"))
    if way is _raw or case.name not in ("responses parse", "beta messages parse")
]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("case", "way"), PAIRS)
def test_raw_and_streaming_responses_give_the_plain_calls_span(case, way, is_async, api, clients, exporter):
    client = clients[(case.sdk, is_async)]
    answer = case.answer()
    api.reply(answer, unread(answer) if way is _streamed else answer)

    plain_value, plain = _span_of(exporter, lambda: _plain(case, client, is_async))
    value, attributes = _span_of(exporter, lambda: way(case, client, is_async))

    assert value == plain_value  # the caller's result is the SDK's own
    assert attributes == plain
    for key, expected in case.expect.items():
        assert attributes[key] == expected, key
    assert attributes["session.id"] == "s-raw"
    assert api.requests[0] == api.requests[1]  # the same request went out


def test_streaming_response_read_as_json_is_recorded_at_close(api, openai_client, exporter):
    api.reply(unread(json_response(chat_completion())))
    with openai_client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=HAIKU
    ) as response:
        assert not exporter.get_finished_spans()  # nothing read yet: the span waits for the caller
        body = response.json()
    assert body["choices"][0]["message"]["content"] == "Leaves drift and fall"
    attributes = only_span(exporter).attributes
    assert attributes["output.value"] == "Leaves drift and fall"
    assert attributes["llm.token_count.total"] == 19


def test_streaming_response_read_as_bytes_keeps_the_request(api, async_anthropic_client, exporter):
    api.reply(unread(json_response(anthropic_message())))

    async def main() -> bytes:
        async with async_anthropic_client.messages.with_streaming_response.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=HAIKU
        ) as response:
            return b"".join([chunk async for chunk in response.iter_bytes()])

    assert json.loads(asyncio.run(main()))["content"][0]["text"] == "Hello there"
    attributes = only_span(exporter).attributes
    assert attributes["llm.input_messages.0.message.content"] == "Write a haiku."
    assert "output.value" not in attributes  # the bytes were the caller's alone


def test_raw_response_never_parsed_still_ends_its_span(api, openai_client, exporter):
    api.reply(unread(json_response(chat_completion())))
    with openai_client.chat.completions.with_streaming_response.create(model="m", messages=HAIKU):
        pass
    assert only_span(exporter).attributes["llm.input_messages.0.message.content"] == "Write a haiku."


def test_refused_parse_fails_the_span_as_the_plain_call_does(api, openai_client, exporter):
    api.reply(json_response(chat_completion("not json at all")))
    raw = openai_client.chat.completions.with_raw_response.parse(
        model="m", messages=HAIKU, response_format=Haiku
    )
    with pytest.raises(pydantic.ValidationError):
        raw.parse()
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["llm.input_messages.0.message.content"] == "Write a haiku."


def test_a_clients_cached_raw_wrapper_traces_again_after_reinstrumenting(
    provider, api, openai_client, exporter
):
    # The SDK binds the method its with_raw_response wraps on first use, per resource: a
    # wrapper cached under one instrument() must trace under the next one too.
    from spanloom.instrumentation.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    api.reply(*(json_response(chat_completion()) for _ in range(3)))
    raw = openai_client.chat.completions.with_raw_response
    raw.create(model="m", messages=HAIKU).parse()
    instrumentor.uninstrument()
    raw.create(model="m", messages=HAIKU).parse()
    assert len(exporter.get_finished_spans()) == 1
    instrumentor.instrument(tracer_provider=provider)
    raw.create(model="m", messages=HAIKU).parse()
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    assert spans[1].attributes["output.value"] == "Leaves drift and fall"


def test_a_body_read_as_json_that_the_sdk_cannot_parse_is_no_error(api, openai_client, exporter):
    # The caller read JSON and never parsed; the span's own parse at close fails: that costs the
    # span its output, and is not the caller's error.
    api.reply(unread(json_response(chat_completion("not json at all"))))
    with openai_client.chat.completions.with_streaming_response.parse(
        model="m", messages=HAIKU, response_format=Haiku
    ) as response:
        assert response.json()["choices"][0]["message"]["content"] == "not json at all"
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.UNSET
    assert "output.value" not in span.attributes
    assert span.attributes["llm.input_messages.0.message.content"] == "Write a haiku."
