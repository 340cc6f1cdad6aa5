"""OTLP AnyValue / KeyValue lists to plain Python values."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

# Nesting deeper than this is cut: a hostile body could otherwise recurse without end.
_MAX_DEPTH = 16


def any_value(value: Any, depth: int = 0) -> Any:
    """One OTLP AnyValue as str, bool, int, float, list, dict, base64 str (bytes) or None."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if depth >= _MAX_DEPTH:
        return None
    if kind == "array_value":
        return [any_value(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: any_value(item.value, depth + 1) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def key_values(items: Iterable[Any]) -> dict[str, Any]:
    """A KeyValue list as a dict (a repeated key keeps its last value)."""
    return {item.key: any_value(item.value) for item in items}
