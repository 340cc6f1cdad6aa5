"""A span's input or output messages in the OpenAI chat format (role, content, tool calls).

Messages come flattened (OpenInference ``llm.input_messages.0.message.role``, OpenLLMetry
``gen_ai.prompt.0.role``) or as GenAI JSON (``gen_ai.input.messages``). Masked values are kept as
the SDK recorded them (the ``__REDACTED__`` placeholder): nothing here looks elsewhere for them.
A message whose role was masked takes the side's role (user for inputs, assistant for outputs),
so the example keeps its shape without saying more than was recorded.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from spanloom import semconv
from spanloom.server.json_text import parse_json

Direction = Literal["input", "output"]
Message = dict[str, Any]

_FLATTENED = {
    "input": (semconv.LLM_INPUT_MESSAGES + ".", semconv.GEN_AI_PROMPT_PREFIX),
    "output": (semconv.LLM_OUTPUT_MESSAGES + ".", semconv.GEN_AI_COMPLETION_PREFIX),
}
_GENAI_JSON = {"input": semconv.GEN_AI_INPUT_MESSAGES, "output": semconv.GEN_AI_OUTPUT_MESSAGES}
_SIDE_ROLE = {"input": "user", "output": "assistant"}
# Other SDKs' names for the chat roles (LangChain's human/ai, Gemini's model).
_ROLES = {
    "system": "system",
    "developer": "developer",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "tool",
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _role(raw: Any, direction: Direction) -> str:
    return _ROLES.get(str(raw or "").lower(), _SIDE_ROLE[direction])


def _by_index(attributes: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.N.rest`` attributes as a list of {rest: value}, in index order."""
    found: dict[int, dict[str, Any]] = {}
    start = len(prefix)
    for key, value in attributes.items():
        if key.startswith(prefix):
            index, _, rest = key[start:].partition(".")
            if index.isdecimal() and len(index) <= 9 and rest:
                found.setdefault(int(index), {})[rest] = value
    return [found[index] for index in sorted(found)]


def _flattened(fields: dict[str, Any], direction: Direction) -> Message:
    fields = {key.removeprefix("message."): value for key, value in fields.items()}
    role = _role(fields.get("role"), direction)
    content = _text(fields.get("content"))
    if content is None:
        parts = [
            _text(part.get("message_content.text", part.get("text")))
            for part in _by_index(fields, "contents.")
        ]
        texts = [part for part in parts if part is not None]
        content = "\n".join(texts) if texts else None
    calls = []
    for call in _by_index(fields, "tool_calls."):
        call = {key.removeprefix("tool_call."): value for key, value in call.items()}
        calls.append(
            {
                "id": _text(call.get("id")),
                "type": "function",
                "function": {
                    "name": _text(call.get("function.name", call.get("name"))) or "",
                    "arguments": _text(call.get("function.arguments", call.get("arguments"))) or "",
                },
            }
        )
    message: Message = {"role": role, "content": content}
    if calls:
        message["tool_calls"] = calls
    if role == "tool":
        message["tool_call_id"] = _text(fields.get("tool_call_id"))
    return message


def _genai(raw: Any, direction: Direction) -> list[Message]:
    """``[{"role", "parts": [{"type": "text"|"tool_call"|"tool_call_response", ...}]}]`` or
    ``[{"role", "content"}]``."""
    if not isinstance(raw, str) or not raw.strip().startswith("["):
        return []
    try:
        items = parse_json(raw)
    except ValueError:
        return []
    messages = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        role = _role(item.get("role"), direction)
        texts = [] if item.get("content") is None else [_text(item["content"]) or ""]
        calls, answered = [], None
        for part in item.get("parts") or ():
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "tool_call":
                calls.append(
                    {
                        "id": _text(part.get("id")),
                        "type": "function",
                        "function": {
                            "name": _text(part.get("name")) or "",
                            "arguments": _text(part.get("arguments")) or "",
                        },
                    }
                )
            elif kind == "tool_call_response":
                answered = _text(part.get("id"))
                texts.append(_text(part.get("response")) or "")
            elif part.get("content") is not None:
                texts.append(_text(part["content"]) or "")
        message: Message = {"role": role, "content": "\n".join(texts) if texts else None}
        if calls:
            message["tool_calls"] = calls
        if role == "tool":
            message["tool_call_id"] = answered
        messages.append(message)
    return messages


def span_messages(attributes: dict[str, Any], direction: Direction) -> list[Message]:
    """The span's input or output messages, [] when it carries none."""
    for prefix in _FLATTENED[direction]:
        found = _by_index(attributes, prefix)
        if found:
            return [_flattened(fields, direction) for fields in found]
    return _genai(attributes.get(_GENAI_JSON[direction]), direction)
