"""The seed document's examples, for real: OpenAI calls inside using_attributes / using_session /
using_user produce spans with session.id and user.id, on a provider without SessionSpanProcessor
(so the ids come from the instrumentor itself)."""

from __future__ import annotations

import pytest

from spanloom import using_attributes, using_session, using_user
from spanloom.instrumentation.openai import OpenAIInstrumentor

from .fakes import chat_completion, json_response, only_span

HAIKU = [{"role": "user", "content": "Write a haiku."}]


@pytest.fixture(autouse=True)
def instrumented(bare_provider, api):
    api.reply(json_response(chat_completion()))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=bare_provider)
    yield
    instrumentor.uninstrument()


def _haiku(client):
    return client.chat.completions.create(model="gpt-3.5-turbo", messages=HAIKU, max_tokens=20)


def test_defining_a_session(openai_client, exporter):
    with using_attributes(session_id="my-session-id"):
        _haiku(openai_client)
    attributes = only_span(exporter).attributes
    assert attributes["session.id"] == "my-session-id"
    assert attributes["gen_ai.conversation.id"] == "my-session-id"
    assert "user.id" not in attributes


def test_defining_a_user(openai_client, exporter):
    with using_attributes(user_id="my-user-id"):
        _haiku(openai_client)
    attributes = only_span(exporter).attributes
    assert attributes["user.id"] == "my-user-id"
    assert "session.id" not in attributes


def test_defining_a_session_and_a_user(openai_client, exporter):
    with using_attributes(session_id="my-session-id", user_id="my-user-id"):
        _haiku(openai_client)
    attributes = only_span(exporter).attributes
    assert attributes["session.id"] == "my-session-id"
    assert attributes["user.id"] == "my-user-id"
    assert attributes["llm.model_name"] == "gpt-4o-mini-2024-07-18"


@pytest.mark.parametrize(
    ("decorator", "expected"),
    [
        (using_attributes(session_id="my-session-id"), {"session.id": "my-session-id"}),
        (using_attributes(user_id="my-user-id"), {"user.id": "my-user-id"}),
        (
            using_attributes(session_id="my-session-id", user_id="my-user-id"),
            {"session.id": "my-session-id", "user.id": "my-user-id"},
        ),
        (using_session(session_id="my-session-id"), {"session.id": "my-session-id"}),
        (using_user("my-user-id"), {"user.id": "my-user-id"}),
    ],
)
def test_decorator_forms(openai_client, exporter, decorator, expected):
    @decorator
    def call_fn(client, *args, **kwargs):
        return client.chat.completions.create(*args, **kwargs)

    call_fn(openai_client, model="gpt-3.5-turbo", messages=HAIKU, max_tokens=20)
    attributes = only_span(exporter).attributes
    assert {key: attributes.get(key) for key in expected} == expected


def test_using_session_and_using_user_blocks(openai_client, exporter):
    with using_session(session_id="my-session-id"), using_user("my-user-id"):
        _haiku(openai_client)
    attributes = only_span(exporter).attributes
    assert (attributes["session.id"], attributes["user.id"]) == ("my-session-id", "my-user-id")
