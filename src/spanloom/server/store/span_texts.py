"""A span's input/output text is kept once: the attribute it was read from (``input.value``, or
whichever alias normalization took) is left out of the stored attributes, with its key and
position, and put back when the span is read. The text is the bulk of an LLM span, so this
halves what every backend writes per span."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

INPUT_VALUE_KEY = "input.value"
OUTPUT_VALUE_KEY = "output.value"


class MovedText(NamedTuple):
    """The attribute a text was read from, and its position among the span's attributes."""

    key: str
    position: int


class SplitAttributes(NamedTuple):
    attributes: dict[str, Any]  # without the moved attributes
    moved_input: MovedText | None
    moved_output: MovedText | None


def _source_key(attributes: dict[str, Any], text: str | None, preferred: str) -> MovedText | None:
    """The attribute (and its position) that holds exactly `text`, if any."""
    if text is None:
        return None
    # Normalization hands over the attribute's own string object, so identity finds it without
    # comparing kilobytes of text; input.value/output.value are also matched by equality.
    for position, (key, value) in enumerate(attributes.items()):
        if value is text or (key == preferred and value == text):
            return MovedText(key, position)
    return None


def split_attributes(
    attributes: dict[str, Any], input_text: str | None, output_text: str | None
) -> SplitAttributes:
    """The attributes without those holding exactly the input or output text."""
    moved_input = _source_key(attributes, input_text, INPUT_VALUE_KEY)
    moved_output = _source_key(attributes, output_text, OUTPUT_VALUE_KEY)
    if moved_output and moved_input and moved_output.key == moved_input.key:
        moved_output = None
    if moved_input or moved_output:
        dropped = {moved.key for moved in (moved_input, moved_output) if moved}
        attributes = {key: value for key, value in attributes.items() if key not in dropped}
    return SplitAttributes(attributes, moved_input, moved_output)


def restore_attributes(
    attributes: dict[str, Any], moved: Sequence[tuple[str | None, int | None, str | None]]
) -> dict[str, Any]:
    """Put back the attributes that input/output were read from, at their positions. `moved`:
    (attribute key, position, text) of the input and the output."""
    found = sorted(
        (position, key, text) for key, position, text in moved if key is not None and position is not None
    )
    if not found:
        return attributes
    items = list(attributes.items())
    for position, key, text in found:
        items.insert(position, (key, text))
    return dict(items)
