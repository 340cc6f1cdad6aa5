"""JSON text from outside the server (span attributes, request bodies, cursors), parsed safely.

Python's JSON parser recurses: text nested about a thousand levels deep raises RecursionError,
which is not a ValueError, so ``except ValueError`` let it through as a 500. And a value that
parses at a shallow stack may still be too deep for code that walks or re-encodes it later from a
deeper one (stored metadata, read back under the web framework's frames). `parse_json` turns both
into ValueError: it refuses nesting past `max_depth`.

JSON may also escape half of a surrogate pair ("\\ud83d": what JavaScript's JSON.stringify writes
for an emoji cut in two). Python parses that into a string no UTF-8 text can hold, so storing it
failed the whole write. Such halves become U+FFFD, the replacement character, as a UTF-8 decoder
does for bytes it cannot read.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
# A \u escape of a surrogate (D800-DFFF), in JSON text.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_SURROGATE_ESCAPE_TEXT = re.compile(r"\\u[dD][89abcdefABCDEF]")


def may_hold_surrogates(text: str | bytes) -> bool:
    """Whether JSON text escapes a surrogate (a fast scan, done before any walk of the value)."""
    if isinstance(text, bytes):
        return _SURROGATE_ESCAPE.search(text) is not None
    return _SURROGATE_ESCAPE_TEXT.search(text) is not None


def _clean_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A pair of halves is one character again; a lone half becomes U+FFFD.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def without_lone_surrogates(value: Any) -> Any:
    """`value` (parsed JSON) with every string and key holding a lone surrogate half repaired."""
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, list):
        return [without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_clean_text(key): without_lone_surrogates(item) for key, item in value.items()}
    return value


def parse_json(text: str | bytes, max_depth: int = MAX_DEPTH, repair: bool = True) -> Any:
    """`json.loads(text)`, raising ValueError for anything it cannot or should not return.
    `repair`: lone surrogate halves become U+FFFD (False leaves them, for a caller that refuses
    such text instead)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if _deeper_than(value, max_depth):
        raise ValueError(f"JSON nested more than {max_depth} levels deep")
    return without_lone_surrogates(value) if repair and may_hold_surrogates(text) else value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels (iteratively: no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
