"""Stored JSON values: one encoder for every backend, which writes what every reader can parse."""

from __future__ import annotations

import json
import math
from typing import Any

try:  # pydantic-core (there with FastAPI's pydantic 2) from 2.14 on
    from pydantic_core import from_json as _fast_json
except ImportError:  # pragma: no cover - an older pydantic-core: the standard library's parser
    _fast_json = json.loads  # type: ignore[assignment]

# One encoder for every value: json.dumps with options builds a new encoder per call, and the
# write path serializes several values of every span. allow_nan=False: NaN and Infinity are not
# JSON, and SQLite's JSON functions (the metadata and tag filters) fail on a row holding them.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def to_json(value: Any) -> str:
    try:
        return _ENCODER.encode(value)
    except ValueError:
        # A NaN or an infinity somewhere (an OTLP double, a number in a metadata string): stored
        # as the string OTLP/JSON spells it with, so the text stays valid JSON.
        return _ENCODER.encode(_finite(value))


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by its OTLP/JSON name ("NaN", "Infinity")."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[repr(value)]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def from_json(text: str) -> Any:
    """A value `to_json` stored, read back: what ``json.loads`` returns (big integers stay exact),
    in a quarter of its time. Reads parse several values of every span, holding the GIL ingest
    needs; a 1,000-span page spent a third of its time in ``json.loads``."""
    try:
        return _fast_json(text)
    except ValueError:
        return json.loads(text)  # whatever the fast parser refuses (a lone surrogate escape)
