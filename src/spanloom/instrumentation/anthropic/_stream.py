"""Accumulator for Anthropic's raw message stream events (``messages.create(stream=True)`` and
``messages.stream(...)`` both read them): deltas appended per block, attributes built once."""

from __future__ import annotations

from typing import Any

from spanloom.instrumentation._messages import to_json
from spanloom.instrumentation.anthropic._attributes import Block, put_output
from spanloom.sdk.mask import TraceConfig


class MessagesStreamAccumulator:
    __slots__ = ("blocks", "cache_creation", "cache_read", "input", "model", "output", "stop", "thinking")

    def __init__(self, config: TraceConfig, request: Any = None) -> None:
        self.blocks: dict[int, list[Any]] = {}  # index -> [type, [text pieces], id, name, tool input]
        self.model: Any = None
        self.stop: Any = None
        self.input: Any = None
        self.output: Any = None
        self.cache_read: Any = None
        self.cache_creation: Any = None
        self.thinking: Any = None

    def extend(self, events: list[Any]) -> None:
        for event in events:
            self._add(event)

    def _add(self, event: Any) -> None:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            block = self.blocks.get(event.index)
            if block is None:
                return
            delta_kind = delta.type
            if delta_kind == "text_delta":
                block[1].append(delta.text)
            elif delta_kind == "input_json_delta":
                block[1].append(delta.partial_json)
            elif delta_kind == "thinking_delta":
                block[1].append(delta.thinking)
        elif kind == "content_block_start":
            start = event.content_block
            block_kind = start.type
            if block_kind == "text":
                self.blocks[event.index] = [block_kind, [start.text] if start.text else [], None, None, None]
            elif block_kind == "tool_use":
                self.blocks[event.index] = [block_kind, [], start.id, start.name, start.input]
            elif block_kind == "thinking":
                self.blocks[event.index] = [
                    block_kind,
                    [start.thinking] if start.thinking else [],
                    None,
                    None,
                    None,
                ]
            else:
                self.blocks[event.index] = [block_kind, [], None, None, None]
        elif kind == "message_start":
            message = event.message
            self.model = message.model
            self._usage(message.usage)
        elif kind == "message_delta":
            if event.delta.stop_reason:
                self.stop = event.delta.stop_reason
            self._usage(event.usage)

    def _usage(self, usage: Any) -> None:
        # message_delta carries cumulative counts; fields it lacks keep message_start's values.
        if usage is None:
            return
        for name, attribute in (
            ("input_tokens", "input"),
            ("output_tokens", "output"),
            ("cache_read_input_tokens", "cache_read"),
            ("cache_creation_input_tokens", "cache_creation"),
        ):
            value = getattr(usage, name, None)
            if value is not None:
                setattr(self, attribute, value)
        details = getattr(usage, "output_tokens_details", None)
        if details is not None:
            self.thinking = details.thinking_tokens

    def attributes(self) -> dict[str, Any]:
        blocks: list[Block] = []
        for _, (kind, pieces, call_id, name, start_input) in sorted(self.blocks.items()):
            if kind == "tool_use":
                arguments = "".join(pieces) if pieces else to_json(start_input or {})
                blocks.append((kind, None, call_id, name, arguments))
            else:
                blocks.append((kind, "".join(pieces) if pieces else None, None, None, None))
        usage = (self.input, self.output, self.cache_read, self.cache_creation, self.thinking)
        return put_output({}, blocks, self.model, self.stop, usage)
