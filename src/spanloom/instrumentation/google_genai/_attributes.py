"""Pure attribute builders for Gemini (``google-genai``): request arguments and responses in, dicts out.

Nothing here imports ``google.genai``: its pydantic types and the dicts callers pass in their
place are read alike (`field`). A ``contents`` argument comes in every shape the SDK accepts:
a string, a part, a content, or a list of them, where consecutive parts make one user turn.
A turn made of ``function_response`` parts is recorded as one ``tool`` message per response,
as the other providers shape tool results. The model's role ``model`` is recorded as
``assistant``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from spanloom import semconv
from spanloom.instrumentation._messages import (
    IMAGE,
    INPUT_MESSAGES,
    OUTPUT_MESSAGES,
    TEXT,
    field,
    image_url,
    put_message,
    put_tools,
    to_json,
)
from spanloom.instrumentation._usage import put_token_counts
from spanloom.sdk.mask import TraceConfig

_ROLES = {"model": "assistant", "user": "user", "function": "tool", "tool": "tool"}
# GenerateContentConfig fields that are the request's content, recorded as their own attributes.
_CONTENT_CONFIG = frozenset({"system_instruction", "tools", "http_options"})

ToolCall = tuple[Any, Any, Any]


def _is_content(value: Any) -> bool:
    return field(value, "parts") is not None or field(value, "role") is not None


def _part(part: Any, config: TraceConfig) -> tuple[str, Any] | None:
    """A part as (type, value) for the message's contents; None for a function call or response."""
    if type(part) is str:
        return TEXT, part
    text = field(part, "text")
    if text is not None:
        return ("thinking" if field(part, "thought") else TEXT), text
    if field(part, "function_call") is not None or field(part, "function_response") is not None:
        return None
    inline = field(part, "inline_data")
    if inline is not None:
        mime = field(inline, "mime_type") or "application/octet-stream"
        data = field(inline, "data")
        if isinstance(data, (bytes, bytearray)):
            data = base64.b64encode(data).decode("ascii")
        kind = IMAGE if mime.startswith("image/") else "file"
        return kind, image_url(f"data:{mime};base64,{data}", config)
    stored = field(part, "file_data")
    if stored is not None:
        mime = field(stored, "mime_type") or ""
        return (IMAGE if mime.startswith("image/") else "file"), field(stored, "file_uri")
    for kind in ("executable_code", "code_execution_result"):
        if field(part, kind) is not None:
            return kind, to_json(field(part, kind))
    return "unknown", None


def _call(call: Any) -> ToolCall:
    return field(call, "id"), field(call, "name"), to_json(field(call, "args") or {})


def _put_turn(
    attributes: dict[str, Any], index: int, role: Any, parts: Iterable[Any], config: TraceConfig
) -> int:
    """One content (a turn) from `index` on; returns the next free index."""
    pieces = []
    calls = []
    for part in parts:
        response = field(part, "function_response") if type(part) is not str else None
        if response is not None:
            put_message(
                attributes,
                f"{INPUT_MESSAGES}{index}.",
                "tool",
                to_json(field(response, "response")),
                name=field(response, "name"),
                tool_call_id=field(response, "id"),
            )
            index += 1
            continue
        call = field(part, "function_call") if type(part) is not str else None
        if call is not None:
            calls.append(_call(call))
            continue
        piece = _part(part, config)
        if piece is not None:
            pieces.append(piece)
    if pieces or calls:
        prefix = f"{INPUT_MESSAGES}{index}."
        role = _ROLES.get(role, role) if role else "user"
        if len(pieces) == 1 and pieces[0][0] == TEXT:
            put_message(attributes, prefix, role, pieces[0][1], None, calls)
        else:
            put_message(attributes, prefix, role, None, pieces, calls)
        index += 1
    return index


def _turns(contents: Any) -> list[tuple[Any, list[Any]]]:
    """`contents` as (role, parts) turns, following the SDK's own reading of its shapes."""
    if contents is None:
        return []
    if type(contents) is str or not isinstance(contents, (list, tuple)):
        contents = [contents]
    turns: list[tuple[Any, list[Any]]] = []
    loose: list[Any] = []  # consecutive parts: one user turn
    for item in contents:
        if type(item) is not str and _is_content(item):
            if loose:
                turns.append(("user", loose))
                loose = []
            turns.append((field(item, "role") or "user", list(field(item, "parts") or ())))
        else:
            loose.append(item)
    if loose:
        turns.append(("user", loose))
    return turns


def _system_parts(system: Any) -> list[Any]:
    if type(system) is str:
        return [system]
    if isinstance(system, (list, tuple)):
        return list(system)
    if _is_content(system):
        return list(field(system, "parts") or ())
    return [system]


def _config_parameters(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    items: Iterable[tuple[str, Any]]
    if isinstance(config, dict):
        items = config.items()
    else:
        dump = getattr(config, "model_dump", None)
        items = dump(exclude_none=True).items() if dump is not None else ()
    return {key: value for key, value in items if key not in _CONTENT_CONFIG and value is not None}


def _tool_schemas(tools: Iterable[Any]) -> list[Any]:
    """Tool definitions as JSON-able values; a Python function (automatic function calling) by name."""
    schemas = []
    for tool in tools:
        if callable(tool) and not hasattr(tool, "model_dump"):
            schemas.append({"name": getattr(tool, "__name__", str(tool))})
        else:
            schemas.append(tool)
    return schemas


def generate_request(kwargs: dict[str, Any], config: TraceConfig) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    settings = kwargs.get("config")
    index = 0
    system = field(settings, "system_instruction") if settings is not None else None
    if system is not None:
        index = _put_turn(attributes, 0, "system", _system_parts(system), config)
    for role, parts in _turns(kwargs.get("contents")):
        index = _put_turn(attributes, index, role, parts, config)
    tools = field(settings, "tools") if settings is not None else None
    if tools:
        put_tools(attributes, _tool_schemas(tools))
    model = kwargs.get("model")
    parameters = {"model": model, **_config_parameters(settings)}
    if model is not None:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
        attributes[semconv.LLM_MODEL_NAME] = model_of(None, kwargs)  # the response's replaces it
    attributes[semconv.LLM_INVOCATION_PARAMETERS] = to_json(parameters)
    contents = kwargs.get("contents")
    if type(contents) is str and system is None:
        attributes[semconv.INPUT_VALUE] = contents
        attributes[semconv.INPUT_MIME_TYPE] = semconv.MIME_TEXT
    else:
        # The turns as recorded above (inline images already cut or masked), not the raw
        # payload, whose bytes would be dumped whole.
        messages = []
        for turn in range(index):
            prefix = f"{INPUT_MESSAGES}{turn}."
            messages.append(
                {
                    "role": attributes.get(prefix + semconv.MESSAGE_ROLE),
                    "content": attributes.get(prefix + semconv.MESSAGE_CONTENT),
                }
            )
        attributes[semconv.INPUT_VALUE] = to_json({"model": model, "contents": messages})
        attributes[semconv.INPUT_MIME_TYPE] = semconv.MIME_JSON
    return attributes


# One candidate as the builders take it: (text pieces, thinking pieces, tool calls, finish reason).
Candidate = tuple[list[str], list[str], list[ToolCall], Any]


def candidate_of(candidate: Any) -> Candidate:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    add_parts(candidate, texts, thoughts, calls)
    return texts, thoughts, calls, field(candidate, "finish_reason")


def add_parts(candidate: Any, texts: list[str], thoughts: list[str], calls: list[ToolCall]) -> None:
    content = field(candidate, "content")
    for part in (field(content, "parts") if content is not None else None) or ():
        text = field(part, "text")
        if text is not None:
            (thoughts if field(part, "thought") else texts).append(text)
            continue
        call = field(part, "function_call")
        if call is not None:
            calls.append(_call(call))


def put_output(
    attributes: dict[str, Any], candidates: list[Candidate], model: Any, usage: Any
) -> dict[str, Any]:
    reasons = []
    for index, (texts, thoughts, calls, reason) in enumerate(candidates):
        prefix = f"{OUTPUT_MESSAGES}{index}."
        text = "".join(texts) if texts or not calls else None
        if thoughts:
            parts = [("thinking", "".join(thoughts))] + ([(TEXT, text)] if text is not None else [])
            put_message(attributes, prefix, "assistant", None, parts, calls)
        else:
            put_message(attributes, prefix, "assistant", text, None, calls)
        if reason is not None:
            reasons.append(getattr(reason, "value", reason))
    if reasons:
        attributes[semconv.LLM_FINISH_REASON] = str(reasons[0])
    if len(candidates) == 1 and not candidates[0][2]:
        attributes[semconv.OUTPUT_VALUE] = "".join(candidates[0][0])
        attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_TEXT
    elif candidates:
        attributes[semconv.OUTPUT_VALUE] = to_json(
            [
                {
                    "content": "".join(texts) if texts else None,
                    "tool_calls": [{"id": i, "name": n, "arguments": a} for i, n, a in calls],
                }
                for texts, _, calls, _ in candidates
            ]
        )
        attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_JSON
    if model:
        attributes[semconv.LLM_MODEL_NAME] = model
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = model
    if usage is not None:
        _put_usage(attributes, usage)
    return attributes


def _put_usage(attributes: dict[str, Any], usage: Any) -> None:
    prompt = field(usage, "prompt_token_count")
    output = field(usage, "candidates_token_count")
    thinking = field(usage, "thoughts_token_count")
    # Thinking is billed as output: the completion count includes it, as OpenAI's does.
    completion = (output or 0) + (thinking or 0) if output is not None or thinking else None
    total = field(usage, "total_token_count")
    cached = field(usage, "cached_content_token_count")
    put_token_counts(
        attributes,
        prompt=prompt,
        completion=completion,
        total=total,
        cache_read=cached,
        reasoning=thinking,
    )


def model_of(response_model: Any, request: dict[str, Any] | None) -> Any:
    """The response's model version, else the requested model without its ``models/`` prefix."""
    if response_model:
        return response_model
    model = (request or {}).get("model")
    if type(model) is str:
        return model.rsplit("/", 1)[-1]
    return None


def generate_response(response: Any, config: TraceConfig) -> dict[str, Any]:
    candidates = [candidate_of(candidate) for candidate in (response.candidates or ())]
    return put_output({}, candidates, response.model_version, response.usage_metadata)
