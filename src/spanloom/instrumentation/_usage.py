"""Token counts on a span, under both conventions (OpenInference ``llm.token_count.*`` and
OpenTelemetry GenAI ``gen_ai.usage.*``), the same for every provider.

Each instrumentor reads its provider's usage object its own way (what counts as prompt tokens
differs: Anthropic reports cached tokens beside the input, Gemini reports thinking beside the
output) and hands the counts here, so a dashboard sums the same attributes whichever model
answered.
"""

from __future__ import annotations

from typing import Any

from spanloom import semconv


def put_token_counts(
    attributes: dict[str, Any],
    *,
    prompt: Any,
    completion: Any,
    total: Any = None,
    cache_read: Any = None,
    cache_write: Any = None,
    reasoning: Any = None,
) -> None:
    """Set the counts that are known; the total is prompt + completion when not reported."""
    if prompt is not None:
        attributes[semconv.LLM_TOKEN_COUNT_PROMPT] = prompt
        attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = prompt
    if completion is not None:
        attributes[semconv.LLM_TOKEN_COUNT_COMPLETION] = completion
        attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = completion
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    if total is not None:
        attributes[semconv.LLM_TOKEN_COUNT_TOTAL] = total
    # Zero cached or reasoning tokens is what every request without them reports: left out.
    if cache_read:
        attributes[semconv.LLM_TOKEN_COUNT_PROMPT_CACHE_READ] = cache_read
        attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read
    if cache_write:
        attributes[semconv.LLM_TOKEN_COUNT_PROMPT_CACHE_WRITE] = cache_write
        attributes[semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_write
    if reasoning:
        attributes[semconv.LLM_TOKEN_COUNT_COMPLETION_REASONING] = reasoning
