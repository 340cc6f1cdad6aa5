"""Pure attribute builders for LangChain runs: messages, model results, documents, values in; dicts out.

Nothing here imports ``langchain_core``: LangChain's objects (messages, ``LLMResult``,
``Document``) are read by attribute access, so the builders work on anything shaped alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from spanloom import semconv
from spanloom.instrumentation._messages import (
    IMAGE,
    INPUT_MESSAGES,
    OUTPUT_MESSAGES,
    TEXT,
    field,
    put_message,
    put_tools,
    to_json,
)
from spanloom.instrumentation._usage import put_token_counts

# LangChain's message types as chat roles.
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "function"}
_DOCUMENTS = semconv.RETRIEVAL_DOCUMENTS + "."
_DOCUMENT_ID = "." + semconv.DOCUMENT_ID
_DOCUMENT_CONTENT = "." + semconv.DOCUMENT_CONTENT
_DOCUMENT_METADATA = "." + semconv.DOCUMENT_METADATA
# The one key of the dicts LangChain wraps a plain input or output in.
_PLAIN_KEYS = frozenset({"input", "output"})
# Invocation parameters that are the request's content, recorded as their own attributes.
_CONTENT_PARAMETERS = frozenset({"tools", "functions", "messages"})


def put_value(attributes: dict[str, Any], key: str, mime_key: str, value: Any) -> None:
    """A run's input or output: text as is, LangChain's ``{"input": text}`` / ``{"output": text}``
    as that text, anything else as JSON."""
    if type(value) is dict and len(value) == 1:
        ((name, only),) = value.items()
        if type(only) is str and name in _PLAIN_KEYS:
            value = only
    if type(value) is str:
        attributes[key] = value
        attributes[mime_key] = semconv.MIME_TEXT
    else:
        attributes[key] = to_json(value)
        attributes[mime_key] = semconv.MIME_JSON


def role_of(message: Any) -> Any:
    kind: Any = getattr(message, "type", None)
    role = _ROLES.get(kind)
    if role is None:  # ChatMessage carries its own role; chunks are "AIMessageChunk" and the like
        role = getattr(message, "role", None) or kind
        if type(role) is str and role.endswith("MessageChunk"):
            role = _ROLES.get(role[: -len("MessageChunk")].lower(), role)
    return role


def _parts(content: Iterable[Any]) -> list[tuple[str, Any]]:
    parts: list[tuple[str, Any]] = []
    for block in content:
        if type(block) is str:
            parts.append((TEXT, block))
            continue
        kind = field(block, "type")
        if kind == "text":
            parts.append((TEXT, field(block, "text")))
        elif kind == "image_url":
            url = field(block, "image_url")
            parts.append((IMAGE, field(url, "url") if not isinstance(url, str) else url))
        elif kind == "image":
            parts.append((IMAGE, field(block, "url")))
        else:
            parts.append((str(kind), None))  # tool_use, thinking, audio: the type only
    return parts


def _tool_calls(message: Any) -> list[tuple[Any, Any, Any]] | None:
    calls = getattr(message, "tool_calls", None)
    if not calls:
        return None
    return [(field(call, "id"), field(call, "name"), to_json(field(call, "args"))) for call in calls]


def put_langchain_message(attributes: dict[str, Any], prefix: str, message: Any) -> None:
    # Only AI messages have tool calls and only tool messages a call id: a missing attribute of
    # a pydantic model costs an exception inside getattr, so the others are not asked.
    role = role_of(message)
    content = getattr(message, "content", None)
    calls = _tool_calls(message) if role == "assistant" else None
    parts = None
    if content is not None and type(content) is not str:
        parts = _parts(content)
        content = None
    elif content == "" and calls:
        content = None  # an assistant turn that only calls tools
    put_message(
        attributes,
        prefix,
        role,
        content,
        parts,
        calls,
        getattr(message, "name", None),
        getattr(message, "tool_call_id", None) if role == "tool" else None,
    )


def chat_request(
    messages: Iterable[Any], invocation: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A chat-model run's request: its messages, tools, model and invocation parameters."""
    attributes: dict[str, Any] = {}
    listed = []
    for index, message in enumerate(messages):
        put_langchain_message(attributes, f"{INPUT_MESSAGES}{index}.", message)
        listed.append({"role": role_of(message), "content": getattr(message, "content", None)})
    attributes[semconv.INPUT_VALUE] = to_json(listed)
    attributes[semconv.INPUT_MIME_TYPE] = semconv.MIME_JSON
    _request_common(attributes, invocation, metadata)
    return attributes


def prompt_request(
    prompts: Iterable[str], invocation: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A text-completion LLM run's request: its prompt(s) as user messages."""
    attributes: dict[str, Any] = {}
    prompts = list(prompts)
    for index, prompt in enumerate(prompts):
        put_message(attributes, f"{INPUT_MESSAGES}{index}.", "user", prompt)
    put_value(
        attributes, semconv.INPUT_VALUE, semconv.INPUT_MIME_TYPE, prompts[0] if len(prompts) == 1 else prompts
    )
    _request_common(attributes, invocation, metadata)
    return attributes


def _request_common(
    attributes: dict[str, Any], invocation: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None
) -> None:
    invocation = invocation or {}
    metadata = metadata or {}
    tools = invocation.get("tools") or invocation.get("functions")
    if tools:
        put_tools(attributes, tools)
    parameters = {
        key: value
        for key, value in invocation.items()
        if key not in _CONTENT_PARAMETERS and value is not None and not key.startswith("_")
    }
    attributes[semconv.LLM_INVOCATION_PARAMETERS] = to_json(parameters)
    model = invocation.get("model") or invocation.get("model_name") or metadata.get("ls_model_name")
    if model:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
        attributes[semconv.LLM_MODEL_NAME] = model  # the response's model replaces it
    provider = metadata.get("ls_provider")
    if provider:
        attributes[semconv.LLM_PROVIDER] = provider
        attributes[semconv.LLM_SYSTEM] = provider
        attributes[semconv.GEN_AI_SYSTEM] = provider


def _put_usage(attributes: dict[str, Any], usage: Mapping[str, Any]) -> None:
    input_details = usage.get("input_token_details") or {}
    output_details = usage.get("output_token_details") or {}
    put_token_counts(
        attributes,
        prompt=usage.get("input_tokens"),
        completion=usage.get("output_tokens"),
        total=usage.get("total_tokens"),
        cache_read=input_details.get("cache_read"),
        cache_write=input_details.get("cache_creation"),
        reasoning=output_details.get("reasoning"),
    )


def _legacy_usage(llm_output: Mapping[str, Any]) -> dict[str, Any] | None:
    """Token counts from ``llm_output`` (older integrations and text-completion LLMs)."""
    usage = llm_output.get("token_usage") or llm_output.get("usage")
    if not isinstance(usage, Mapping):
        return None
    return {
        "input_tokens": usage.get("prompt_tokens", usage.get("input_tokens")),
        "output_tokens": usage.get("completion_tokens", usage.get("output_tokens")),
        "total_tokens": usage.get("total_tokens"),
    }


def llm_response(response: Any) -> dict[str, Any]:
    """A model run's result (``LLMResult``): output messages, model, finish reason, tokens."""
    attributes: dict[str, Any] = {}
    generations = [generation for batch in (response.generations or ()) for generation in batch]
    texts = []
    usage = None
    model = None
    reasons = []
    for index, generation in enumerate(generations):
        message = getattr(generation, "message", None)
        info = getattr(generation, "generation_info", None) or {}
        reason = info.get("finish_reason")
        if message is None:  # a text-completion generation
            text = generation.text
            put_message(attributes, f"{OUTPUT_MESSAGES}{index}.", "assistant", text)
            texts.append(text)
        else:
            put_langchain_message(attributes, f"{OUTPUT_MESSAGES}{index}.", message)
            usage = usage or getattr(message, "usage_metadata", None)
            metadata = getattr(message, "response_metadata", None) or {}
            model = model or metadata.get("model_name") or metadata.get("model")
            reason = reason or metadata.get("finish_reason") or metadata.get("stop_reason")
            content = message.content
            texts.append(
                content if type(content) is str and not getattr(message, "tool_calls", None) else None
            )
        if reason:
            reasons.append(reason)
    if len(texts) == 1 and type(texts[0]) is str:
        attributes[semconv.OUTPUT_VALUE] = texts[0]
        attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_TEXT
    elif generations:
        attributes[semconv.OUTPUT_VALUE] = to_json(
            [getattr(generation, "message", None) or generation.text for generation in generations]
        )
        attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_JSON
    if reasons:
        attributes[semconv.LLM_FINISH_REASON] = reasons[0]
    llm_output = response.llm_output or {}
    model = model or llm_output.get("model_name") or llm_output.get("model")
    if model:
        attributes[semconv.LLM_MODEL_NAME] = model
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = model
    if usage is None:
        usage = _legacy_usage(llm_output)
    if usage:
        _put_usage(attributes, usage)
    return attributes


def documents(attributes: dict[str, Any], found: Iterable[Any]) -> dict[str, Any]:
    """A retriever's documents: ``retrieval.documents.{i}.document.content`` / ``.id`` / ``.metadata``."""
    for index, document in enumerate(found):
        prefix = f"{_DOCUMENTS}{index}"
        content = getattr(document, "page_content", None)
        if content is not None:
            attributes[prefix + _DOCUMENT_CONTENT] = content
        document_id = getattr(document, "id", None)
        if document_id is not None:
            attributes[prefix + _DOCUMENT_ID] = str(document_id)
        metadata = getattr(document, "metadata", None)
        if metadata:
            attributes[prefix + _DOCUMENT_METADATA] = to_json(metadata)
    return attributes


def tool_output(output: Any) -> Any:
    """What a tool returned: a ToolMessage's content, else the value itself."""
    if getattr(output, "type", None) == "tool" and hasattr(output, "content"):
        return output.content
    return output
