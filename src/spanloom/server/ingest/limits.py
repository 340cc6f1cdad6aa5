"""Ingest limits, and cutting a too-long text so that the cut shows.

Values over `max_attribute_value_bytes` are cut at a character boundary and end with
``…[truncated N bytes]``; attributes past `max_attributes_per_span` are dropped. Either way the
span gets ``spanloom.truncated = true`` (and ``spanloom.dropped_attributes_count`` for drops), so
the dashboard and the API say that what they show is not everything that was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TRUNCATED_ATTRIBUTE = "spanloom.truncated"
DROPPED_ATTRIBUTES = "spanloom.dropped_attributes_count"
MIB = 1024 * 1024


class TooManySpansError(ValueError):
    """One request carries more spans than `max_spans_per_request` (answered 413)."""


@dataclass(frozen=True)
class IngestLimits:
    max_body_bytes: int = 16 * MIB
    max_spans_per_request: int = 25_000
    max_attribute_value_bytes: int = 64 * 1024
    max_attributes_per_span: int = 1024
    max_spans_per_trace: int = 100_000
    max_values_per_request: int = 1_000_000

    @classmethod
    def from_settings(cls, settings: Any) -> IngestLimits:
        return cls(
            max_body_bytes=settings.max_body_bytes,
            max_spans_per_request=settings.max_spans_per_request,
            max_attribute_value_bytes=settings.max_attribute_value_bytes,
            max_attributes_per_span=settings.max_attributes_per_span,
            max_spans_per_trace=settings.max_spans_per_trace,
            max_values_per_request=settings.max_values_per_request,
        )


@dataclass
class Cuts:
    """What was cut from one span while reading it."""

    values: int = 0  # texts truncated
    dropped: int = 0  # attributes dropped past the per-span limit

    def mark(self, attributes: dict[str, Any]) -> None:
        if self.values or self.dropped:
            attributes[TRUNCATED_ATTRIBUTE] = True
        if self.dropped:
            attributes[DROPPED_ATTRIBUTES] = self.dropped


def truncate_text(text: str, max_bytes: int, cuts: Cuts | None = None) -> str:
    """`text` if its UTF-8 form fits in `max_bytes`, else its first bytes and a marker."""
    # Fast path: even at 4 bytes a character, the text fits.
    if len(text) * 4 <= max_bytes:
        return text
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    if cuts is not None:
        cuts.values += 1
    kept = encoded[:max_bytes].decode("utf-8", "ignore")  # a split character is left out whole
    dropped = len(encoded) - len(kept.encode("utf-8", "surrogatepass"))
    return f"{kept}…[truncated {dropped} bytes]"
