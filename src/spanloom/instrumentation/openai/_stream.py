"""Accumulators for OpenAI streams: a few list appends per chunk, attributes built once at the end."""

from __future__ import annotations

from itertools import chain
from operator import attrgetter
from typing import Any

from spanloom import semconv
from spanloom.instrumentation._messages import OUTPUT_MESSAGES, put_message
from spanloom.instrumentation.openai._attributes import (
    Choice,
    put_chat_output,
    responses_response,
    text_answer,
)
from spanloom.sdk.mask import TraceConfig


class _ChoiceState:
    __slots__ = ("calls", "finish_reason", "role", "texts")

    def __init__(self) -> None:
        self.role: Any = None
        self.texts: list[str] = []
        self.calls: dict[int, list[Any]] = {}  # tool call index -> [id, name, [argument pieces]]
        self.finish_reason: Any = None


_CHOICES = attrgetter("choices")
_DELTA = attrgetter("delta")
_CONTENT = attrgetter("content")
_ROLE = attrgetter("role")
_TOOL_CALLS = attrgetter("tool_calls")


class ChatStreamAccumulator:
    """Chat completion chunks: content and tool-call argument deltas per choice, the usage chunk.

    Chunks are the SDK's pydantic models, whose attribute reads cost several times a plain
    object's (the class defines ``__getattr__``, which turns off the interpreter's attribute
    caches). A request for one choice (the usual case) is read in whole batches by C-level
    ``map``/``filter`` passes, one per field, with no Python frame per chunk; ``n > 1`` takes
    the chunk-by-chunk path, which sorts the deltas by choice index.
    """

    __slots__ = ("choices", "model", "single", "tools", "usage")

    def __init__(self, config: TraceConfig, request: Any = None) -> None:
        self.choices: dict[int, _ChoiceState] = {}
        self.model: Any = None
        self.usage: Any = None
        get = request.get if type(request) is dict else {}.get
        n = get("n")
        self.single = n is None or n == 1 or type(n) not in (int, float)  # not given: one choice
        # A model calls only the tools it was given: without any, no delta is read for them.
        self.tools = request is None or bool(get("tools")) or bool(get("functions"))

    def extend(self, chunks: list[Any]) -> None:
        if not chunks:
            return
        if self.model is None:
            self.model = chunks[0].model
        if not self.single:
            self._extend_by_choice(chunks)
            return
        # With stream_options={"include_usage": True} the last chunk has no choices, only usage
        # (servers that send usage on every chunk send the final counts last): only the last
        # chunk of each batch is read.
        usage = chunks[-1].usage
        if usage is not None:
            self.usage = usage
        choices = list(chain.from_iterable(map(_CHOICES, chunks)))
        if not choices:
            return
        if choices[-1].index != 0:  # more choices than the request asked for: sort them out
            self.single = False
            self._extend_by_choice(chunks)
            return
        state = self.choices.get(0)
        if state is None:
            state = self.choices[0] = _ChoiceState()
        deltas = list(filter(None, map(_DELTA, choices)))
        state.texts.extend(filter(None, map(_CONTENT, deltas)))
        if state.role is None:
            state.role = next(filter(None, map(_ROLE, deltas)), None)
        if self.tools:
            for tool_calls in filter(None, map(_TOOL_CALLS, deltas)):
                self._add_tool_calls(state, tool_calls)
        # The finish reason comes with the choice's last delta: the last choice of the batch.
        reason = choices[-1].finish_reason
        if reason:
            state.finish_reason = reason

    def _extend_by_choice(self, chunks: list[Any]) -> None:
        states = self.choices
        for chunk in chunks:
            for choice in chunk.choices:
                index = choice.index
                state = states.get(index)
                if state is None:
                    state = states[index] = _ChoiceState()
                delta = choice.delta
                if delta is not None:
                    content = delta.content
                    if content:
                        state.texts.append(content)
                    if delta.role:
                        state.role = delta.role
                    if delta.tool_calls:
                        self._add_tool_calls(state, delta.tool_calls)
                if choice.finish_reason:
                    state.finish_reason = choice.finish_reason
            if chunk.usage is not None:
                self.usage = chunk.usage

    @staticmethod
    def _add_tool_calls(state: _ChoiceState, tool_calls: Any) -> None:
        for call in tool_calls:
            entry = state.calls.get(call.index)
            if entry is None:
                entry = state.calls[call.index] = [None, None, []]
            if call.id:
                entry[0] = call.id
            function = call.function
            if function is not None:
                if function.name:
                    entry[1] = function.name
                if function.arguments:
                    entry[2].append(function.arguments)

    def attributes(self) -> dict[str, Any]:
        if len(self.choices) == 1 and 0 in self.choices:
            state = self.choices[0]
            if not state.calls:
                answer = "".join(state.texts)
                return text_answer(
                    state.role or "assistant", answer, state.finish_reason, self.model, self.usage
                )
        choices: list[Choice] = []
        for _, state in sorted(self.choices.items()):
            calls = [(i, n, "".join(a)) for i, n, a in (state.calls[k] for k in sorted(state.calls))]
            text = "".join(state.texts) if state.texts or not calls else None
            choices.append((state.role or "assistant", text, calls or None, state.finish_reason))
        return put_chat_output({}, choices, self.model, self.usage)


_TEXT_DELTA = "response.output_text.delta"
_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesStreamAccumulator:
    """Responses API events: the final response when it comes, the text deltas until then."""

    __slots__ = ("config", "final", "model", "texts")

    def __init__(self, config: TraceConfig, request: Any = None) -> None:
        self.config = config
        self.texts: list[str] = []
        self.final: Any = None
        self.model: Any = None

    def extend(self, events: list[Any]) -> None:
        texts = self.texts
        for event in events:
            kind = event.type
            if kind == _TEXT_DELTA:
                texts.append(event.delta)
            elif kind in _FINAL:
                self.final = event.response
            elif kind == "response.created":
                self.model = event.response.model

    def attributes(self) -> dict[str, Any]:
        if self.final is not None:
            return responses_response(self.final, self.config)
        attributes: dict[str, Any] = {}
        if self.texts:  # closed before the end: the text so far
            text = "".join(self.texts)
            put_message(attributes, f"{OUTPUT_MESSAGES}0.", "assistant", text)
            attributes[semconv.OUTPUT_VALUE] = text
            attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_TEXT
        if self.model:
            attributes[semconv.LLM_MODEL_NAME] = self.model
            attributes[semconv.GEN_AI_RESPONSE_MODEL] = self.model
        return attributes
