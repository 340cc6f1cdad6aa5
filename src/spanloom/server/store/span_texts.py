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


def split_attributes(
    attributes: dict[str, Any], input_text: str | None, output_text: str | None
) -> SplitAttributes:
    """The attributes without those holding exactly the input or output text (the first such
    attribute of each; one attribute holding both is moved as the input)."""
    moved_input: MovedText | None = None
    moved_output: MovedText | None = None
    # One pass for both texts, ended once both are found: this runs for every span stored.
    # Normalization hands over the attribute's own string object, so identity finds it without
    # comparing kilobytes of text; input.value/output.value are also matched by equality.
    find_input, find_output = input_text is not None, output_text is not None
    if find_input or find_output:
        for position, (key, value) in enumerate(attributes.items()):
            if find_input and (value is input_text or (key == INPUT_VALUE_KEY and value == input_text)):
                moved_input, find_input = MovedText(key, position), False
            if find_output and (value is output_text or (key == OUTPUT_VALUE_KEY and value == output_text)):
                moved_output, find_output = MovedText(key, position), False
            if not find_input and not find_output:
                break
    if moved_output and moved_input and moved_output.key == moved_input.key:
        moved_output = None
    if moved_input or moved_output:
        attributes = dict(attributes)  # the caller's dict stays as it was
        for moved in (moved_input, moved_output):
            if moved:
                del attributes[moved.key]
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
