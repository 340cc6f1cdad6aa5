"""Attributes a span's typed columns already hold (its session and user ids, kind, model and
token counts) are kept once: an attribute whose value the column reproduces exactly (the same
type and value) is left out of the stored attributes, with its position, and put back when the
span is read. Any other value (" s1 " beside the column's "s1", a count sent as text) stays in
the attributes as sent. On the benchmark's spans these attributes were half of what the
attributes JSON held after the input/output texts (span_texts.py): ~130 bytes a span.

Stored as `lifted`, one byte pair per attribute left out: (its slot in `SLOTS`, its position
among the span's attributes as they were given to `lift_attributes`). Positions past 255 are
not lifted. SLOTS is part of the stored format: append to it, never reorder it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from spanloom import semconv
from spanloom.server.store.base import SpanRecord

# (attribute key, the SpanRecord field holding the same value). Each key at most once.
SLOTS: tuple[tuple[str, str], ...] = (
    (semconv.SESSION_ID, "session_id"),
    (semconv.USER_ID, "user_id"),
    (semconv.OPENINFERENCE_SPAN_KIND, "span_kind"),
    (semconv.LLM_MODEL_NAME, "model"),
    (semconv.LLM_TOKEN_COUNT_PROMPT, "prompt_tokens"),
    (semconv.LLM_TOKEN_COUNT_COMPLETION, "completion_tokens"),
    (semconv.LLM_TOKEN_COUNT_TOTAL, "total_tokens"),
    (semconv.GEN_AI_CONVERSATION_ID, "session_id"),
    (semconv.GEN_AI_SPAN_KIND, "span_kind"),
    (semconv.GEN_AI_REQUEST_MODEL, "model"),
    (semconv.GEN_AI_RESPONSE_MODEL, "model"),
    (semconv.GEN_AI_USAGE_INPUT_TOKENS, "prompt_tokens"),
    (semconv.GEN_AI_USAGE_OUTPUT_TOKENS, "completion_tokens"),
)
_MAX_POSITION = 255  # a position is one byte


class LiftedAttributes(NamedTuple):
    attributes: dict[str, Any]  # without the lifted ones
    lifted: bytes | None  # (slot, position) pairs; None when none was lifted


def lift_attributes(attributes: dict[str, Any], span: SpanRecord) -> LiftedAttributes:
    """The attributes without those whose value the span's column holds, exactly."""
    found: list[tuple[int, str]] = []
    # A lookup per slot (most are absent) rather than a pass over the span's attributes: this
    # runs for every span stored.
    for slot, (key, field_name) in enumerate(SLOTS):
        value = attributes.get(key)
        if value is None:
            continue
        column = getattr(span, field_name)
        # type() rather than isinstance: True is an int, and would come back as 1.
        if type(value) is type(column) and value == column and type(value) in (str, int):
            found.append((slot, key))
    if not found:
        return LiftedAttributes(attributes, None)
    keys = list(attributes)
    pairs = bytearray()
    kept = dict(attributes)  # the caller's dict stays as it was
    for slot, key in found:
        position = keys.index(key)
        if position <= _MAX_POSITION:
            pairs += bytes((slot, position))
            del kept[key]
    return LiftedAttributes(kept, bytes(pairs)) if pairs else LiftedAttributes(attributes, None)


def restore_lifted(attributes: dict[str, Any], lifted: bytes | None, span: SpanRecord) -> dict[str, Any]:
    """The attributes with the lifted ones put back at their positions, valued from `span`'s
    columns (which must be read already)."""
    if not lifted:
        return attributes
    found = sorted((lifted[index + 1], lifted[index]) for index in range(0, len(lifted), 2))
    items = list(attributes.items())
    for position, slot in found:
        key, field_name = SLOTS[slot]
        items.insert(position, (key, getattr(span, field_name)))
    return dict(items)
