"""Normalization alone: decoded OTLP spans to records, with every alias and the price table."""

from __future__ import annotations

import json

import pytest
from _server_kit import make_request, make_span

from spanloom.server.ingest.normalize import normalize_request
from spanloom.server.pricing import load_price_table

PRICES = load_price_table()
TRACE, SPAN, PARENT = b"\x0a" * 16, b"\x0b" * 8, b"\x0c" * 8


def normalize_one(attributes: dict, resource: dict | None = None, **span_options):
    request = make_request([make_span(TRACE, SPAN, attributes=attributes, **span_options)], resource or {})
    batch = normalize_request(request, PRICES)
    assert batch.rejected == 0
    return batch.spans[0]


@pytest.mark.parametrize(
    ("resource", "project"),
    [
        ({"project.name": "a", "openinference.project.name": "b", "service.name": "c"}, "a"),
        ({"openinference.project.name": "b", "project_name": "x", "service.name": "c"}, "b"),
        ({"project_name": "x", "service.name": "c"}, "x"),
        ({"service.name": "c"}, "c"),
        ({"service.name": "unknown_service:python"}, "default"),
        ({}, "default"),
    ],
)
def test_project_from_resource(resource: dict, project: str):
    assert normalize_one({}, resource).project == project


def test_ids_times_status_and_kind():
    span = normalize_one(
        {"session.id": " s1 ", "enduser.id": "u1"}, parent_span_id=PARENT, start_ms=5, error=True
    )
    assert (span.trace_id, span.span_id, span.parent_span_id) == (TRACE.hex(), SPAN.hex(), PARENT.hex())
    assert (span.session_id, span.user_id, span.status_code) == ("s1", "u1", "ERROR")
    assert span.end_time_ns - span.start_time_ns == 10_000_000 and span.duration_ms == 10.0
    assert span.otel_kind == "INTERNAL" and span.span_kind == "UNKNOWN"


def test_ids_on_the_resource_are_a_fallback():
    span = normalize_one({"user.id": "span-user"}, {"session.id": "res-session", "user.id": "res-user"})
    assert (span.session_id, span.user_id) == ("res-session", "span-user")


@pytest.mark.parametrize(
    ("attributes", "kind"),
    [
        ({"openinference.span.kind": "tool"}, "TOOL"),
        ({"gen_ai.span.kind": "AGENT"}, "AGENT"),
        ({"fi.span.kind": "RETRIEVER"}, "RETRIEVER"),
        ({"openinference.span.kind": "weird"}, "UNKNOWN"),
        ({"gen_ai.operation.name": "chat"}, "LLM"),
        ({"gen_ai.operation.name": "embeddings"}, "EMBEDDING"),
        ({"gen_ai.operation.name": "execute_tool"}, "TOOL"),
        ({"gen_ai.request.model": "gpt-4o"}, "LLM"),
    ],
)
def test_span_kind_aliases(attributes: dict, kind: str):
    assert normalize_one(attributes).span_kind == kind


def test_openinference_model_tokens_and_cost():
    span = normalize_one(
        {
            "llm.model_name": "gpt-4o-2024-08-06",
            "llm.token_count.prompt": 1000,
            "llm.token_count.completion": 500,
        }
    )
    assert (span.model, span.prompt_tokens, span.completion_tokens, span.total_tokens) == (
        "gpt-4o-2024-08-06",
        1000,
        500,
        1500,
    )
    assert span.cost == pytest.approx((1000 * 2.5 + 500 * 10) / 1e6)


def test_genai_model_and_tokens():
    span = normalize_one(
        {
            "gen_ai.request.model": "claude-3-5-sonnet-latest",
            "gen_ai.response.model": "claude-3-5-sonnet-20241022",
            "gen_ai.usage.input_tokens": 2000,
            "gen_ai.usage.output_tokens": 100,
        }
    )
    assert span.model == "claude-3-5-sonnet-20241022" and span.total_tokens == 2100
    assert span.cost == pytest.approx((2000 * 3 + 100 * 15) / 1e6)


def test_unknown_model_or_no_tokens_has_no_cost():
    assert normalize_one({"llm.model_name": "my-own-model", "llm.token_count.prompt": 5}).cost is None
    assert normalize_one({"llm.model_name": "gpt-4o"}).cost is None


def test_input_output_values_win():
    span = normalize_one(
        {"input.value": "q", "output.value": "a", "llm.input_messages.0.message.content": "m"}
    )
    assert (span.input, span.output) == ("q", "a")


def test_flattened_openinference_messages():
    span = normalize_one(
        {
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "be nice",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "first question",
            "llm.input_messages.2.message.role": "assistant",
            "llm.input_messages.2.message.content": "first answer",
            "llm.input_messages.3.message.role": "user",
            "llm.input_messages.3.message.contents.0.message_content.type": "text",
            "llm.input_messages.3.message.contents.0.message_content.text": "second question",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
        }
    )
    assert (span.input, span.output) == ("second question", "tool call: get_weather")


def test_openllmetry_and_genai_messages():
    openllmetry = normalize_one(
        {
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "hello",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "hi there",
        }
    )
    assert (openllmetry.input, openllmetry.output) == ("hello", "hi there")
    genai = normalize_one(
        {
            "gen_ai.input.messages": json.dumps(
                [
                    {"role": "system", "parts": [{"type": "text", "content": "sys"}]},
                    {"role": "user", "parts": [{"type": "text", "content": "question"}]},
                ]
            ),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "reply"}]}]
            ),
        }
    )
    assert (genai.input, genai.output) == ("question", "reply")


def test_metadata_and_tags_from_both_spellings():
    span = normalize_one(
        {
            "metadata": json.dumps({"tier": "gold"}),
            "langfuse.trace.metadata.region": "eu",
            "tag.tags": ["a", "b"],
            "langfuse.trace.tags": json.dumps(["b", "c"]),
        }
    )
    assert span.metadata == {"tier": "gold", "region": "eu"} and span.tags == ["a", "b", "c"]


def test_invalid_ids_are_counted_not_kept():
    spans = [
        make_span(TRACE, SPAN),
        make_span(b"\x00" * 16, SPAN),
        make_span(TRACE, b""),
        make_span(TRACE, b"\x01" * 8, parent_span_id=b"\x01\x02"),
    ]
    batch = normalize_request(make_request(spans), PRICES)
    assert len(batch.spans) == 1 and batch.rejected == 3
    assert "trace_id" in batch.error_message and "parent_span_id" in batch.error_message


def test_oversized_ids_are_not_ids():
    assert normalize_one({"session.id": "x" * 257}).session_id is None
    assert normalize_one({"session.id": ""}).session_id is None
    assert normalize_one({"session_id": 42}).session_id == "42"


def test_message_keys_are_grouped_alike_however_often_seen():
    """group_by_prefix remembers each key's prefix: a key seen before, under another set of
    prefixes, or too long to be remembered, groups exactly as a fresh one."""
    from spanloom.server.ingest.messages import MESSAGE_PREFIXES, group_by_prefix

    long_key = "llm.input_messages.0.message." + "x" * 500
    keys = ["llm.input_messages.0.message.content", "session.id", "gen_ai.prompt.0.content", long_key]
    expected = {
        "llm.input_messages.": ["llm.input_messages.0.message.content", long_key],
        "gen_ai.prompt.": ["gen_ai.prompt.0.content"],
    }
    for _ in range(3):
        assert group_by_prefix(keys, MESSAGE_PREFIXES) == expected
        assert group_by_prefix(keys, ("gen_ai.",)) == {"gen_ai.": ["gen_ai.prompt.0.content"]}
        assert group_by_prefix(keys, ("session.",)) == {"session.": ["session.id"]}
