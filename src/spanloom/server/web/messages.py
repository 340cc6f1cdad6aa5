"""A span's inputs and outputs for display: chat messages when they are messages, else JSON or text.

Messages come flattened (OpenInference ``llm.input_messages.0.message.role``, OpenLLMetry
``gen_ai.prompt.0.role``) or as GenAI JSON (``gen_ai.input.messages``). This is a display
concern, so it lives with the pages; request and response JSON (``input.value`` of a chat call)
is read by `server.turn_text`, which also gives the transcript its one-line texts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from spanloom import semconv
from spanloom.server.json_text import parse_json
from spanloom.server.store.base import SpanRecord
from spanloom.server.turn_text import chat_messages as chat_messages_in

_FLATTENED = {
    "input": (semconv.LLM_INPUT_MESSAGES + ".", "gen_ai.prompt."),
    "output": (semconv.LLM_OUTPUT_MESSAGES + ".", "gen_ai.completion."),
}
_GENAI_JSON = {"input": semconv.GEN_AI_INPUT_MESSAGES, "output": semconv.GEN_AI_OUTPUT_MESSAGES}
_INDEXED = re.compile(r"(\d{1,9})\.(.+)")
_TOOL_CALL = re.compile(r"tool_calls\.(\d{1,9})\.(?:tool_call\.)?(.+)")
_CONTENT_PART = re.compile(r"contents\.(\d{1,9})\.(?:message_content\.)?(.+)")
# Where the content of an exception event lives (OpenTelemetry's semantic conventions).
EXCEPTION_KEYS = ("exception.type", "exception.message", "exception.stacktrace")


@dataclass
class ToolCall:
    name: str
    arguments: str  # pretty JSON when it parses, else as sent


@dataclass
class Message:
    role: str
    content: str = ""
    name: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass
class Payload:
    """One input or output: `messages` when kind is "messages", else `text` (JSON pretty-printed)."""

    kind: Literal["messages", "json", "text"]
    messages: list[Message] = field(default_factory=list)
    text: str = ""


def pretty(value: Any) -> str:
    """Text as is; anything else (and text holding a JSON object or list) as indented JSON."""
    if isinstance(value, str):
        parsed = _json_container(value)
        return value if parsed is None else json.dumps(parsed, indent=2, ensure_ascii=False)
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _json_container(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        parsed = parse_json(stripped)
    except ValueError:
        return None
    return parsed if isinstance(parsed, (dict, list)) else None


def _flattened(attributes: dict[str, Any], prefix: str) -> list[Message]:
    by_index: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if key.startswith(prefix):
            match = _INDEXED.fullmatch(key[len(prefix) :])
            if match:
                by_index.setdefault(int(match[1]), {})[match[2].removeprefix("message.")] = value
    return [_message(fields) for _, fields in sorted(by_index.items())]


def _message(fields: dict[str, Any]) -> Message:
    calls: dict[int, dict[str, Any]] = {}
    parts: dict[int, dict[str, Any]] = {}
    for key, value in fields.items():
        if match := _TOOL_CALL.fullmatch(key):
            calls.setdefault(int(match[1]), {})[match[2]] = value
        elif match := _CONTENT_PART.fullmatch(key):
            parts.setdefault(int(match[1]), {})[match[2]] = value
    content = fields.get("content")
    if content is None and parts:
        content = "\n".join(
            str(part.get("text") or part.get("image.image.url") or "") for _, part in sorted(parts.items())
        )
    return Message(
        role=str(fields.get("role") or "message"),
        content="" if content is None else pretty(content),
        name=str(fields.get("name") or fields.get("tool_call_id") or ""),
        tool_calls=[
            ToolCall(str(call.get("function.name") or call.get("name") or "tool"), _arguments(call))
            for _, call in sorted(calls.items())
        ],
    )


def _arguments(call: dict[str, Any]) -> str:
    raw = call.get("function.arguments", call.get("arguments"))
    return "" if raw is None else pretty(raw)


def _genai(raw: Any) -> list[Message]:
    """``[{"role": ..., "parts": [{"type": "text", "content": ...}]}]`` or ``{"role", "content"}`` items."""
    items = _json_container(raw) if isinstance(raw, str) else None
    if not isinstance(items, list):
        return []
    messages = []
    for item in items:
        if not isinstance(item, dict):
            continue
        content, calls = item.get("content"), []
        for part in item.get("parts") or ():
            if not isinstance(part, dict):
                continue
            if part.get("type") == "tool_call":
                calls.append(ToolCall(str(part.get("name") or "tool"), pretty(part.get("arguments", ""))))
            elif part.get("content") is not None:
                content = part["content"] if content is None else f"{content}\n{part['content']}"
        text = "" if content is None else pretty(content)
        messages.append(Message(role=str(item.get("role") or "message"), content=text, tool_calls=calls))
    return messages


def chat_messages(attributes: dict[str, Any], direction: Literal["input", "output"]) -> list[Message]:
    for prefix in _FLATTENED[direction]:
        messages = _flattened(attributes, prefix)
        if messages:
            return messages
    return _genai(attributes.get(_GENAI_JSON[direction]))


def payload(span: SpanRecord, direction: Literal["input", "output"]) -> Payload | None:
    """How to show the span's input or output, or None when it has none."""
    messages = chat_messages(span.attributes, direction)
    if messages:
        return Payload("messages", messages=messages)
    value = span.attributes.get(semconv.INPUT_VALUE if direction == "input" else semconv.OUTPUT_VALUE)
    if value is None:
        value = span.input if direction == "input" else span.output
    if value is None or value == "":
        return None
    parsed = _json_container(value) if isinstance(value, str) else value
    if parsed is None:
        return Payload("text", text=value)
    # A chat request or response as JSON (input.value of OpenAI's, Anthropic's, LangChain's
    # calls) reads as its messages; the JSON as sent stays in the span's attributes.
    found = chat_messages_in(parsed)
    if found:
        return Payload("messages", messages=[Message(role=m.role, content=m.content) for m in found])
    return Payload("json", text=pretty(value))
