"""A span's input and output as text: `input.value`/`output.value`, else chat messages.

Messages come flattened (OpenInference ``llm.input_messages.0.message.content``, OpenLLMetry
``gen_ai.prompt.0.content``) or as GenAI JSON (``gen_ai.input.messages``). For the input, the
last user message is what the person asked; for the output, the first choice is what they got.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from spanloom import semconv
from spanloom.server.turn_text import chat_messages, parse_container

_INPUT_PREFIXES = (semconv.LLM_INPUT_MESSAGES + ".", semconv.GEN_AI_PROMPT_PREFIX)
_OUTPUT_PREFIXES = (semconv.LLM_OUTPUT_MESSAGES + ".", semconv.GEN_AI_COMPLETION_PREFIX)
MESSAGE_PREFIXES = (*_INPUT_PREFIXES, *_OUTPUT_PREFIXES)

# Keys under each message prefix, found by one pass over a span's keys (see group_by_prefix).
Grouped = dict[str, list[str]]


# Each key's prefix ("" for none), per tuple of prefixes: spans of one app repeat the same keys,
# so a key is matched against the prefixes once, not once per span. Bounded both ways: only
# short keys are kept, and a client sending ever new keys only empties the cache now and then.
_PREFIX_OF: dict[tuple[str, ...], dict[str, str]] = {}
_CACHED_KEYS = 4096
_CACHED_KEY_LENGTH = 128


def group_by_prefix(keys: Iterable[str], prefixes: tuple[str, ...]) -> Grouped:
    """The keys starting with each of `prefixes` (which must not be prefixes of each other), in
    order. One pass, where reading each alias by scanning all keys was a pass per prefix."""
    cache = _PREFIX_OF.get(prefixes)
    if cache is None:
        cache = _PREFIX_OF[prefixes] = {}
    grouped: Grouped = {}
    for key in keys:
        prefix = cache.get(key)
        if prefix is None:
            prefix = next((candidate for candidate in prefixes if key.startswith(candidate)), "")
            if len(key) <= _CACHED_KEY_LENGTH:
                if len(cache) >= _CACHED_KEYS:
                    cache.clear()
                cache[key] = prefix
        if prefix:
            grouped.setdefault(prefix, []).append(key)
    return grouped


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _flattened_messages(attributes: dict[str, Any], keys: Iterable[str], prefix: str) -> list[dict[str, Any]]:
    """``prefix.N.rest`` keys (`keys`, all under `prefix`) as a list of {rest: value} in index order."""
    by_index: dict[int, dict[str, Any]] = {}
    start = len(prefix)
    for key in keys:
        index, _, rest = key[start:].partition(".")
        if index.isdecimal() and len(index) <= 9 and rest:
            by_index.setdefault(int(index), {})[rest.removeprefix("message.")] = attributes[key]
    return [by_index[index] for index in sorted(by_index)]


def _flattened_content(message: dict[str, Any]) -> str | None:
    content = message.get("content")
    if isinstance(content, str) and content:
        return content
    # message.contents.M.message_content.text
    parts = [
        value
        for key, value in sorted(message.items())
        if key.startswith("contents.")
        and key.endswith(semconv.MESSAGE_CONTENT_TEXT)
        and isinstance(value, str)
    ]
    if parts:
        return "\n".join(parts)
    calls = [
        value
        for key, value in sorted(message.items())
        if key.startswith("tool_calls.") and key.endswith(semconv.TOOL_CALL_FUNCTION_NAME)
    ]
    return f"tool call: {', '.join(map(str, calls))}" if calls else None


def _genai_messages(raw: Any) -> list[dict[str, Any]]:
    """gen_ai.input/output.messages: a JSON list of {role, parts: [{type, content}]} or {role, content}."""
    if isinstance(raw, str):
        raw = parse_container(raw)
    return (
        [{"role": m.role, "content": m.content or None} for m in chat_messages(raw)]
        if isinstance(raw, list)
        else []
    )


def _pick_input(messages: list[dict[str, Any]], content_of: Any) -> str | None:
    for message in reversed(messages):
        if message.get("role") == "user":
            text = content_of(message)
            if text:
                return text
    return next((text for text in map(content_of, reversed(messages)) if text), None)


def input_text(attributes: dict[str, Any], grouped: Grouped | None = None) -> str | None:
    """`grouped`: the keys under MESSAGE_PREFIXES, when the caller has them already."""
    value = attributes.get(semconv.INPUT_VALUE)
    if value is not None:
        return _as_text(value)
    if grouped is None:
        grouped = group_by_prefix(attributes, MESSAGE_PREFIXES)
    for prefix in _INPUT_PREFIXES:
        messages = _flattened_messages(attributes, grouped.get(prefix, ()), prefix)
        if messages:
            return _pick_input(messages, _flattened_content)
    messages = _genai_messages(attributes.get(semconv.GEN_AI_INPUT_MESSAGES))
    return _pick_input(messages, lambda message: message.get("content")) if messages else None


def output_text(attributes: dict[str, Any], grouped: Grouped | None = None) -> str | None:
    value = attributes.get(semconv.OUTPUT_VALUE)
    if value is not None:
        return _as_text(value)
    if grouped is None:
        grouped = group_by_prefix(attributes, MESSAGE_PREFIXES)
    for prefix in _OUTPUT_PREFIXES:
        messages = _flattened_messages(attributes, grouped.get(prefix, ()), prefix)
        if messages:
            return _flattened_content(messages[0])
    messages = _genai_messages(attributes.get(semconv.GEN_AI_OUTPUT_MESSAGES))
    return messages[0].get("content") if messages else None
