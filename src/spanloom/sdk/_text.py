"""Text that can leave the process: valid UTF-8, and JSON that never raises.

OTLP encodes strings as UTF-8 protobuf fields. A Python string with a lone surrogate (from a
bad decode, a fuzzer, an attacker) cannot be encoded: the exporter silently loses that
attribute (a session id, a whole input) and logs a traceback for it, on every export. So text
the SDK records passes through here first.
"""

from __future__ import annotations

import json
import math
from typing import Any


def clean_text(text: str) -> str:
    """`text`, with lone surrogates replaced by U+FFFD; the same object when already valid."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def is_clean_text(text: str) -> bool:
    return clean_text(text) is text


def dumps(value: Any) -> str:
    """JSON for attribute values: anything unserializable becomes its str(), never an error.

    NaN and infinities, which are not JSON (backends that parse the attribute strictly would
    drop it), become the strings OTLP/JSON spells them with: "NaN", "Infinity", "-Infinity".
    """
    try:
        text = json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        try:
            text = json.dumps(finite(value), ensure_ascii=False, default=str, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            # circular references, keys that are not str/int/float/bool/None, absurd nesting
            text = json.dumps(_safe_str(value), ensure_ascii=False)
    return clean_text(text)


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by its OTLP/JSON name."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[repr(value)]
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
