"""OTLP AnyValue / KeyValue lists to plain Python values, within the ingest limits."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from spanloom.server.ingest.limits import Cuts, truncate_text

# Nesting deeper than this is cut: a hostile body could otherwise recurse without end.
MAX_DEPTH = 16
# Elements of one attribute value, over all its nesting (an embedding vector has a few thousand).
MAX_ELEMENTS_PER_VALUE = 10_000
_NO_LIMIT = 1 << 62


def any_value(value: Any, depth: int = 0, max_bytes: int = _NO_LIMIT, cuts: Cuts | None = None) -> Any:
    """One OTLP AnyValue as str, bool, int, float, list, dict, base64 str (bytes) or None.

    Every string inside (also in lists and maps) is cut to `max_bytes`, counted in `cuts`; lists
    and maps nested past MAX_DEPTH levels become None, and elements past MAX_ELEMENTS_PER_VALUE
    (over the whole nested value) are left out, also counted in `cuts`.
    """
    return _any_value(value, depth, max_bytes, cuts, [MAX_ELEMENTS_PER_VALUE])


def _any_value(value: Any, depth: int, max_bytes: int, cuts: Cuts | None, remaining: list[int]) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return truncate_text(value.string_value, max_bytes, cuts)
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "bytes_value":
        return truncate_text(base64.b64encode(value.bytes_value).decode(), max_bytes, cuts)
    if kind not in ("array_value", "kvlist_value"):
        return None
    if depth >= MAX_DEPTH:
        if cuts is not None:
            cuts.values += 1
        return None
    items = value.array_value.values if kind == "array_value" else value.kvlist_value.values
    taken = min(len(items), remaining[0])
    remaining[0] -= taken
    if taken < len(items) and cuts is not None:
        cuts.values += 1
    if kind == "array_value":
        return [_any_value(items[index], depth + 1, max_bytes, cuts, remaining) for index in range(taken)]
    return {
        items[index].key: _any_value(items[index].value, depth + 1, max_bytes, cuts, remaining)
        for index in range(taken)
    }


def key_values(
    items: Iterable[Any],
    max_bytes: int = _NO_LIMIT,
    max_items: int = _NO_LIMIT,
    cuts: Cuts | None = None,
) -> dict[str, Any]:
    """A KeyValue list as a dict: a repeated key keeps its last value; keys past `max_items` are
    dropped (the first ones are kept, as OpenTelemetry SDKs do) and counted in `cuts`."""
    result: dict[str, Any] = {}
    # Fits whatever its encoding (4 bytes a character at most): see truncate_text.
    short = max_bytes // 4
    for item in items:
        key = item.key
        if len(result) >= max_items and key not in result:
            if cuts is not None:
                cuts.dropped += 1
            continue
        value = item.value
        # Inline fast paths for the common scalars: this loop runs for every attribute of
        # every span ingested, and the call to any_value was a third of its cost. A non-empty
        # string_value is set (the value is a oneof), so most attributes need no WhichOneof.
        text = value.string_value
        if text:
            result[key] = text if len(text) <= short else truncate_text(text, max_bytes, cuts)
            continue
        kind = value.WhichOneof("value")
        if kind == "string_value":
            result[key] = text
        elif kind == "int_value":
            result[key] = value.int_value
        else:
            result[key] = any_value(value, 0, max_bytes, cuts)
    return result
