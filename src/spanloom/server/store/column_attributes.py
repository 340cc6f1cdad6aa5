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
# The SpanRecord fields SLOTS name, read once per span; and (key, slot, field's index) per slot.
_FIELDS = tuple(dict.fromkeys(field_name for _, field_name in SLOTS))
_ENTRIES = tuple((key, slot, _FIELDS.index(field_name)) for slot, (key, field_name) in enumerate(SLOTS))


class LiftedAttributes(NamedTuple):
    attributes: dict[str, Any]  # without the lifted ones
    lifted: bytes | None  # (slot, position) pairs in slot order; None when none was lifted


def lift_attributes(attributes: dict[str, Any], span: SpanRecord) -> LiftedAttributes:
    """The attributes without those whose value the span's column holds, exactly."""
    # A membership test per slot (most are absent), not a pass over the span's attributes, and
    # no more work than this for a span without any: this runs for every span stored.
    present = [entry for entry in _ENTRIES if entry[0] in attributes]
    if not present:
        return LiftedAttributes(attributes, None)
    columns = [getattr(span, field_name) for field_name in _FIELDS]
    keys: list[str] | None = None
    kept = attributes
    pairs: list[int] = []
    for key, slot, field_index in present:
        value, column = attributes[key], columns[field_index]
        # type() rather than isinstance: True is an int, and would come back as 1.
        if value == column and type(value) is type(column) and (type(value) is str or type(value) is int):
            if keys is None:
                keys = list(attributes)
                kept = dict(attributes)  # the caller's dict stays as it was
            position = keys.index(key)
            if position <= _MAX_POSITION:
                pairs += (slot, position)
                del kept[key]
    return LiftedAttributes(kept, bytes(pairs) if pairs else None)


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
