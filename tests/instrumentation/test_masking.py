"""TraceConfig applies to every recorded message, image and embedding vector."""

from __future__ import annotations

import base64
import json

import pytest

from spanloom import REDACTED_VALUE, TraceConfig, using_attributes
from spanloom.instrumentation.anthropic import AnthropicInstrumentor
from spanloom.instrumentation.openai import OpenAIInstrumentor

from .fakes import (
    anthropic_message,
    chat_chunks,
    chat_completion,
    embedding_body,
    json_response,
    only_span,
    openai_sse,
)

IMAGE_URL = "https://example.com/secret.png"
WITH_IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Mail bob@example.com about this"},
            {"type": "image_url", "image_url": {"url": IMAGE_URL}},
        ],
    }
]


@pytest.fixture
def instrument(provider):
    instrumentors = []

    def instrument(config: TraceConfig, cls=OpenAIInstrumentor):
        instrumentor = cls()
        instrumentor.instrument(tracer_provider=provider, config=config)
        instrumentors.append(instrumentor)

    yield instrument
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


def test_hide_inputs_and_outputs(instrument, api, openai_client, exporter):
    instrument(TraceConfig(hide_inputs=True, hide_outputs=True))
    api.reply(json_response(chat_completion()))
    with using_attributes(session_id="s-1", user_id="u-1"):
        openai_client.chat.completions.create(model="m", messages=WITH_IMAGE)
    attributes = only_span(exporter).attributes
    assert attributes["input.value"] == attributes["output.value"] == REDACTED_VALUE
    assert "input.mime_type" not in attributes
    assert "output.mime_type" not in attributes
    assert attributes["llm.input_messages.0.message.role"] == REDACTED_VALUE
    assert attributes["llm.output_messages.0.message.content"] == REDACTED_VALUE
    assert attributes["session.id"] == "s-1"
    assert attributes["llm.token_count.total"] == 19


def test_hide_input_images_also_in_input_value(instrument, api, openai_client, exporter):
    instrument(TraceConfig(hide_input_images=True))
    api.reply(json_response(chat_completion()))
    openai_client.chat.completions.create(model="m", messages=WITH_IMAGE)
    attributes = only_span(exporter).attributes
    prefix = "llm.input_messages.0.message.contents"
    assert attributes[f"{prefix}.1.message_content.image.image.url"] == REDACTED_VALUE
    assert attributes[f"{prefix}.0.message_content.text"] == "Mail bob@example.com about this"
    assert IMAGE_URL not in attributes["input.value"]
    assert "bob@example.com" in attributes["input.value"]


def test_redact_patterns_everywhere_but_ids(instrument, api, openai_client, exporter):
    instrument(TraceConfig(redact_patterns=["email"]))
    api.reply(json_response(chat_completion("Sent to bob@example.com")))
    with using_attributes(user_id="alice@example.com"):
        openai_client.chat.completions.create(model="m", messages=WITH_IMAGE)
    attributes = only_span(exporter).attributes
    assert attributes["user.id"] == "alice@example.com"  # ids group users; never rewritten
    text = attributes["llm.input_messages.0.message.contents.0.message_content.text"]
    assert text == f"Mail {REDACTED_VALUE} about this"
    assert "bob@example.com" not in attributes["input.value"]
    assert attributes["output.value"] == f"Sent to {REDACTED_VALUE}"
    assert attributes["llm.output_messages.0.message.content"] == f"Sent to {REDACTED_VALUE}"


def test_redaction_applies_to_streamed_output(instrument, api, openai_client, exporter):
    instrument(TraceConfig(redact_patterns=["email"]))
    api.reply(openai_sse(chat_chunks(["write to ", "bob@exam", "ple.com"])))
    for _ in openai_client.chat.completions.create(model="m", messages=WITH_IMAGE, stream=True):
        pass
    assert only_span(exporter).attributes["output.value"] == f"write to {REDACTED_VALUE}"


def test_hide_embedding_vectors(instrument, api, openai_client, exporter):
    instrument(TraceConfig(hide_embedding_vectors=True))
    api.reply(json_response(embedding_body()))
    openai_client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    attributes = only_span(exporter).attributes
    assert attributes["embedding.embeddings.0.embedding.vector"] == REDACTED_VALUE
    assert attributes["embedding.embeddings.0.embedding.text"] == "a"


def test_long_inline_images_are_cut(instrument, api, openai_client, exporter):
    instrument(TraceConfig(base64_image_max_length=100, hide_output_text=True))
    data_url = "data:image/png;base64," + base64.b64encode(b"\x89PNG" * 200).decode()
    api.reply(json_response(chat_completion()))
    openai_client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}}]}],
    )
    attributes = only_span(exporter).attributes
    assert (
        attributes["llm.input_messages.0.message.contents.0.message_content.image.image.url"]
        == REDACTED_VALUE
    )
    assert data_url not in attributes["input.value"]
    assert attributes["llm.output_messages.0.message.content"] == REDACTED_VALUE


def test_anthropic_images_and_inputs_masked(instrument, api, anthropic_client, exporter):
    instrument(TraceConfig(hide_input_images=True, hide_output_messages=True), AnthropicInstrumentor)
    api.reply(json_response(anthropic_message()))
    source = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgoSECRET"}
    messages = [
        {"role": "user", "content": [{"type": "image", "source": source}, {"type": "text", "text": "hi"}]}
    ]
    anthropic_client.messages.create(model="claude", max_tokens=5, messages=messages)
    attributes = only_span(exporter).attributes
    assert (
        attributes["llm.input_messages.0.message.contents.0.message_content.image.image.url"]
        == REDACTED_VALUE
    )
    assert "iVBORw0KGgoSECRET" not in attributes["input.value"]
    assert json.loads(attributes["input.value"])["messages"][0]["content"][1]["text"] == "hi"
    assert attributes["llm.output_messages.0.message.content"] == REDACTED_VALUE


def test_over_long_inline_images_are_cut_with_nothing_configured(instrument, api, openai_client, exporter):
    instrument(TraceConfig())
    limit = TraceConfig().base64_image_max_length
    data_url = "data:image/png;base64," + "A" * (limit + 10)
    api.reply(json_response(chat_completion()))
    openai_client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}}]}],
    )
    attributes = only_span(exporter).attributes
    assert (
        attributes["llm.input_messages.0.message.contents.0.message_content.image.image.url"]
        == REDACTED_VALUE
    )
    assert len(attributes["input.value"]) < limit
    assert (
        api.requests[0]["messages"][0]["content"][0]["image_url"]["url"] == data_url
    )  # the call is untouched
