"""Opaque page cursors: the last row's sort value and id, as URL-safe base64 JSON.

Paging by (sort value, id) rather than by offset means rows inserted while a client pages never
shift the page boundaries: no row is skipped or repeated.
"""

from __future__ import annotations

import base64
import binascii
import json

from spanloom.server.json_text import parse_json

# The "sort key" of the cursors that page a trace's spans (`Store.get_trace`).
TRACE_SPANS_CURSOR = "trace_spans"


class InvalidCursorError(ValueError):
    """The cursor was not one this server produced."""


def encode_cursor(sort_key: str, value: int | float | str, row_id: str) -> str:
    raw = json.dumps([sort_key, value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort_key: str) -> tuple[int | float | str, str]:
    """The (sort value, id) in `cursor`; it must have been made for the same sort key."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, value, row_id = parse_json(raw, max_depth=1)
    except (binascii.Error, ValueError, TypeError) as error:
        raise InvalidCursorError("not a cursor from this server") from error
    if key != sort_key:
        raise InvalidCursorError(f"the cursor was made for sort={key}, not sort={sort_key}")
    if not isinstance(value, (int, float, str)) or isinstance(value, bool) or not isinstance(row_id, str):
        raise InvalidCursorError("not a cursor from this server")
    return value, row_id
