"""JSON text from outside the server (span attributes, request bodies, cursors), parsed safely.

Python's JSON parser recurses: text nested about a thousand levels deep raises RecursionError,
which is not a ValueError, so ``except ValueError`` let it through as a 500. And a value that
parses at a shallow stack may still be too deep for code that walks or re-encodes it later from a
deeper one (stored metadata, read back under the web framework's frames). `parse_json` turns both
into ValueError: it refuses nesting past `max_depth`.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


def parse_json(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads(text)`, raising ValueError for anything it cannot or should not return."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if _deeper_than(value, max_depth):
        raise ValueError(f"JSON nested more than {max_depth} levels deep")
    return value


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
