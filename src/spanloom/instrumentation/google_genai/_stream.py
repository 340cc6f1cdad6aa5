"""Accumulator for Gemini streams: each chunk is a partial ``GenerateContentResponse``."""

from __future__ import annotations

from typing import Any

from spanloom.instrumentation.google_genai._attributes import (
    Candidate,
    ToolCall,
    add_parts,
    model_of,
    put_output,
)
from spanloom.sdk.mask import TraceConfig


class GenerateStreamAccumulator:
    """Text, thinking and function calls per candidate; the last finish reason, usage and model."""

    __slots__ = ("candidates", "model", "request", "usage")

    def __init__(self, config: TraceConfig, request: Any = None) -> None:
        self.request = request
        # candidate index -> [texts, thoughts, calls, finish reason]
        self.candidates: dict[int, list[Any]] = {}
        self.model: Any = None
        self.usage: Any = None

    def extend(self, chunks: list[Any]) -> None:
        for chunk in chunks:
            for position, candidate in enumerate(chunk.candidates or ()):
                index = candidate.index if candidate.index is not None else position
                state = self.candidates.get(index)
                if state is None:
                    texts: list[str] = []
                    thoughts: list[str] = []
                    calls: list[ToolCall] = []
                    state = self.candidates[index] = [texts, thoughts, calls, None]
                add_parts(candidate, state[0], state[1], state[2])
                if candidate.finish_reason is not None:
                    state[3] = candidate.finish_reason
            if chunk.usage_metadata is not None:
                self.usage = chunk.usage_metadata  # the counts so far: the last chunk's are final
            if chunk.model_version:
                self.model = chunk.model_version

    def attributes(self) -> dict[str, Any]:
        candidates: list[Candidate] = [
            (texts, thoughts, calls, reason)
            for _, (texts, thoughts, calls, reason) in sorted(self.candidates.items())
        ]
        return put_output({}, candidates, model_of(self.model, self.request), self.usage)
