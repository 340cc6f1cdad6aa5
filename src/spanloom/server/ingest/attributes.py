"""OTLP AnyValue / KeyValue lists to plain Python values, within the ingest limits."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from spanloom.server.ingest.limits import Cuts, truncate_text

# Nesting deeper than this is cut: a hostile body could otherwise recurse without end.
_MAX_DEPTH = 16
_NO_LIMIT = 1 << 62


def any_value(value: Any, depth: int = 0, max_bytes: int = _NO_LIMIT, cuts: Cuts | None = None) -> Any:
    """One OTLP AnyValue as str, bool, int, float, list, dict, base64 str (bytes) or None.

    Every string inside (also in lists and maps) is cut to `max_bytes`, counted in `cuts`.
    """
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return truncate_text(value.string_value, max_bytes, cuts)
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if depth >= _MAX_DEPTH:
        return None
    if kind == "array_value":
        return [any_value(item, depth + 1, max_bytes, cuts) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {
            item.key: any_value(item.value, depth + 1, max_bytes, cuts) for item in value.kvlist_value.values
        }
    if kind == "bytes_value":
        return truncate_text(base64.b64encode(value.bytes_value).decode(), max_bytes, cuts)
    return None


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
