"""The chat example of a session (export/dataset.py) from recorded spans in the shapes other SDKs
write: calls without the history, tool calls without ids or tool messages, GenAI JSON messages,
OpenLLMetry's flattened prompts; every example valid for the OpenAI SDK's message types."""

from __future__ import annotations

import json
from typing import Any

from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter

from spanloom.server.api.export.dataset import session_example
from spanloom.server.store.base import SessionSummary, SessionTurns, SpanRecord, TraceSummary

MESSAGE = TypeAdapter(ChatCompletionMessageParam)


def _summary() -> SessionSummary:
    return SessionSummary("s", "p", "u", 2, None, None, 0, 0, 0, 0.0, 0, 0.0, 0.0, [], {})


def _turn(number: int, text_in: str | None = None, text_out: str | None = None) -> TraceSummary:
    return TraceSummary(
        f"{number:032x}", "p", "s", "u", None, "turn", "CHAIN", number, number + 1, 1.0, 1, 0, 0, 0.0,
        "OK", text_in, text_out, [], {},
    )  # fmt: skip


def _span(
    number: int, kind: str, name: str = "llm", output: str | None = None, **attributes: Any
) -> SpanRecord:
    return SpanRecord(
        f"{number:032x}", f"{number:016x}", None, name, "p", 0, 1, span_kind=kind, output=output,
        attributes=attributes,
    )  # fmt: skip


def _messages(turns: list[TraceSummary], spans: dict[str, list[SpanRecord]]) -> list[dict[str, Any]]:
    example = session_example(_summary(), SessionTurns("p", "s", turns, spans))
    for message in example["messages"]:
        MESSAGE.validate_python(message)
    return example["messages"]


def _flat(prefix: str, index: int, **fields: Any) -> dict[str, Any]:
    return {f"{prefix}.{index}.message.{key}": value for key, value in fields.items()}


def test_calls_without_the_history_add_their_new_messages_and_say_the_system_prompt_once():
    spans = {
        _turn(n).trace_id: [
            _span(
                n,
                "LLM",
                **_flat("llm.input_messages", 0, role="system", content="Be brief."),
                **_flat("llm.input_messages", 1, role="user", content=f"q{n}"),
                **_flat("llm.output_messages", 0, role="assistant", content=f"a{n}"),
            )
        ]
        for n in (1, 2)
    }
    assert _messages([_turn(1), _turn(2)], spans) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
    ]


def test_a_tool_call_without_id_or_tool_message_is_answered_by_its_tool_span():
    call = {
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"id": 7}',
    }
    spans = {
        _turn(1).trace_id: [
            _span(
                1, "LLM", **_flat("llm.input_messages", 0, role="user", content="Where is order 7?"), **call
            ),
            _span(1, "TOOL", name="lookup", output='{"status": "shipped"}'),
            _span(1, "LLM", **_flat("llm.output_messages", 0, role="assistant", content="Shipped.")),
        ]
    }
    assert _messages([_turn(1)], spans) == [
        {"role": "user", "content": "Where is order 7?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"id": 7}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1_1", "content": '{"status": "shipped"}'},
        {"role": "assistant", "content": "Shipped."},
    ]


def test_genai_json_messages_and_openllmetry_prompts():
    genai_in = [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
    genai_out = [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": {"x": 1}}],
        }
    ]
    genai_tool = [
        *genai_in,
        *genai_out,
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "done"}]},
    ]
    spans = {
        _turn(1).trace_id: [
            _span(
                1,
                "LLM",
                **{
                    "gen_ai.input.messages": json.dumps(genai_in),
                    "gen_ai.output.messages": json.dumps(genai_out),
                },
            ),
            _span(1, "LLM", **{"gen_ai.input.messages": json.dumps(genai_tool)}),
        ],
        _turn(2).trace_id: [
            _span(
                2,
                "LLM",
                **{
                    "gen_ai.prompt.0.role": "user",
                    "gen_ai.prompt.0.content": "Thanks",
                    "gen_ai.completion.0.role": "assistant",
                    "gen_ai.completion.0.content": "Welcome",
                },
            )
        ],
    }
    assert _messages([_turn(1), _turn(2)], spans) == [
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
            ],
        },
        {"role": "tool", "content": "done", "tool_call_id": "c1"},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "Welcome"},
    ]


def test_masked_roles_take_their_sides_role_and_text_turns_fill_in():
    masked = {
        "llm.input_messages.0.message.role": "__REDACTED__",
        "llm.input_messages.0.message.content": "__REDACTED__",
        "llm.output_messages.0.message.role": "__REDACTED__",
        "llm.output_messages.0.message.content": "__REDACTED__",
    }
    spans = {_turn(1).trace_id: [_span(1, "LLM", **masked)]}
    assert _messages([_turn(1, "ignored", "ignored"), _turn(2, "q2", "a2")], spans) == [
        {"role": "user", "content": "__REDACTED__"},
        {"role": "assistant", "content": "__REDACTED__"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
    ]
