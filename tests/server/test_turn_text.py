"""The user's words and the answer, read out of each shape a span's input/output text comes in."""

from __future__ import annotations

import json

import pytest

from spanloom.server.turn_text import ChatMessage, answer_text, chat_messages, parse_container, user_text

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)> "quoted" \\ 𝄞'

OPENAI_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a travel agent."},
        {"role": "user", "content": "Find me a flight to Lisbon"},
        {"role": "assistant", "content": "When would you like to fly?"},
        {"role": "user", "content": "Next Friday, morning please"},
    ],
    "temperature": 0.2,
}
OPENAI_PARTS_REQUEST = {
    "model": "gpt-4o",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ],
}
ANTHROPIC_REQUEST = {
    "model": "claude-3-5-sonnet-latest",
    "max_tokens": 1024,
    "system": "Answer briefly.",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Is the museum open on Mondays?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "hours", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "closed"}]},
    ],
}
RESPONSES_TEXT_REQUEST = {
    "model": "gpt-4.1",
    "input": "Summarize the meeting notes",
    "instructions": "Be terse",
}
RESPONSES_ITEMS_REQUEST = {
    "model": "gpt-4.1",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Translate 'good morning' to Czech"}]},
    ],
}
LANGCHAIN_CHAT_INPUT = {
    "messages": [
        [
            {
                "lc": 1,
                "type": "constructor",
                "id": ["langchain", "schema", "messages", "SystemMessage"],
                "kwargs": {"content": "You help with recipes.", "type": "system"},
            },
            {
                "lc": 1,
                "type": "constructor",
                "id": ["langchain", "schema", "messages", "HumanMessage"],
                "kwargs": {"content": "A vegan lasagna for six?", "type": "human"},
            },
        ]
    ]
}
OPENAI_COMPLETION = {
    "id": "chatcmpl-9",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The 08:05 TAP flight has seats.", "refusal": None},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49},
}
ANTHROPIC_MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-sonnet-latest",
    "content": [{"type": "text", "text": "No, it is closed on Mondays."}],
    "stop_reason": "end_turn",
}
RESPONSES_OBJECT = {
    "id": "resp_1",
    "object": "response",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Dobré ráno", "annotations": []}],
        },
    ],
}


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        (OPENAI_REQUEST, "Next Friday, morning please"),
        (OPENAI_PARTS_REQUEST, "What is in this picture?"),
        (ANTHROPIC_REQUEST, "closed"),  # the last user message is the tool's result
        (RESPONSES_TEXT_REQUEST, "Summarize the meeting notes"),
        (RESPONSES_ITEMS_REQUEST, "Translate 'good morning' to Czech"),
        (LANGCHAIN_CHAT_INPUT, "A vegan lasagna for six?"),
        ({"input": "What's our refund policy?", "chat_history": []}, "What's our refund policy?"),
        ({"question": "Who wrote Dune?"}, "Who wrote Dune?"),
        ([{"role": "user", "content": "hi there"}], "hi there"),
        # gen_ai.input.messages parts
        ([{"role": "user", "parts": [{"type": "text", "content": "parts text"}]}], "parts text"),
    ],
)
def test_user_text_of_each_request_shape(request_body: object, expected: str) -> None:
    assert user_text(json.dumps(request_body)) == expected


@pytest.mark.parametrize(
    ("response_body", "expected"),
    [
        (OPENAI_COMPLETION, "The 08:05 TAP flight has seats."),
        (ANTHROPIC_MESSAGE, "No, it is closed on Mondays."),
        (RESPONSES_OBJECT, "Dobré ráno"),
        ({"output": "Here is the lasagna recipe."}, "Here is the lasagna recipe."),
        # a LangChain LLMResult
        (
            {
                "generations": [
                    [
                        {
                            "text": "",
                            "message": {
                                "lc": 1,
                                "type": "constructor",
                                "id": ["AIMessage"],
                                "kwargs": {"content": "Bake 45 minutes."},
                            },
                        }
                    ]
                ]
            },
            "Bake 45 minutes.",
        ),
        # our OpenAI instrumentor with n > 1: the choices as a list, the first shown
        ([{"role": "assistant", "content": "first"}, {"role": "assistant", "content": "second"}], "first"),
        (
            {
                "choices": [
                    {
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "c1",
                                    "type": "function",
                                    "function": {"name": "get_weather", "arguments": "{}"},
                                }
                            ],
                        }
                    }
                ]
            },
            "tool call: get_weather",
        ),
    ],
)
def test_answer_text_of_each_response_shape(response_body: object, expected: str) -> None:
    assert answer_text(json.dumps(response_body)) == expected


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "plain question?",
        '{"model": "gpt-4o", "messages": [{"role": "user", "content": "cut sh',  # cut by the ingest limit
        '{"temperature": 0.1}',  # JSON, no messages
        "[1, 2, 3]",
        "42",
        "[" * 5000,  # deeper than the JSON reader accepts
    ],
)
def test_text_without_messages_is_kept_as_it_was(text: str | None) -> None:
    assert user_text(text) == text
    assert answer_text(text) == text


def test_anthropic_system_prompt_comes_first_among_the_messages() -> None:
    messages = chat_messages(ANTHROPIC_REQUEST)
    assert messages[0] == ChatMessage("system", "Answer briefly.")
    assert [message.role for message in messages] == ["system", "user", "assistant", "user"]
    assert messages[2].content == ""  # a tool_use block has no text


def test_parse_container_is_none_for_non_json() -> None:
    assert parse_container("hello {") is None
    assert parse_container('  {"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": [{"role": "user", "content": HOSTILE}]},
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": HOSTILE}]}]},
        {"model": "m", "input": HOSTILE},
        {
            "messages": [
                [{"lc": 1, "type": "constructor", "id": ["HumanMessage"], "kwargs": {"content": HOSTILE}}]
            ]
        },
        {"input": HOSTILE},
    ],
)
def test_hostile_text_comes_back_unchanged_for_the_escaping_page(body: object) -> None:
    # Extraction never escapes or alters: the templates escape (tests/server/test_web_pages.py).
    assert user_text(json.dumps(body)) == HOSTILE
