"""Opaque page cursors: the last row's sort value and key, as URL-safe base64 JSON.

Paging by (sort value, key) rather than by offset means rows inserted while a client pages never
shift the page boundaries: no row is skipped or repeated. A key is the row's identity in its
list: (project, session id) for sessions, (project, user id) for users, (trace id,) for traces.

A cursor comes back from the client, so it is checked as input: it must be one this server could
have made for the same list and sort, with values a store can bind (64-bit integers, finite
floats, strings without lone surrogates); anything else is `InvalidCursorError` (a 400).
"""

from __future__ import annotations

import base64
import binascii
import json
import math

from spanloom.server.json_text import parse_json

# The "sort key" of the cursors that page a trace's spans (`Store.get_trace`).
TRACE_SPANS_CURSOR = "trace_spans"
# A session's turns (`Store.get_session`): the page starting at a turn, or the page ending right
# before one. Their key is the turn's (start time, trace id), the order turns are in.
TURNS_FROM = "turns_from"
TURNS_BEFORE = "turns_before"
_INT64 = 2**63
# A cursor is a handful of short values; anything longer was not made here.
MAX_CURSOR_LENGTH = 4096


class InvalidCursorError(ValueError):
    """The cursor was not one this server produced."""


def encode_cursor(sort_key: str, value: int | float | str, key: tuple[str, ...]) -> str:
    raw = json.dumps([sort_key, value, *key], separators=(",", ":"), allow_nan=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bindable(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_INT64 <= value < _INT64
    if isinstance(value, float):
        # The eval sorts page rows without a result at -inf/+inf; NaN never sorts.
        return not math.isnan(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no database takes it
            return False
        return True
    return False


def decode_cursor(
    cursor: str, sort_key: str, key_length: int = 1
) -> tuple[int | float | str, tuple[str, ...]]:
    """The (sort value, key) in `cursor`; it must have been made for the same sort key, with a
    key of `key_length` strings."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursorError("not a cursor from this server")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # Not repaired: a cursor holding half a surrogate pair was not made here, and is refused.
        decoded = parse_json(raw, max_depth=1, repair=False)
    except (binascii.Error, ValueError, TypeError) as error:
        raise InvalidCursorError("not a cursor from this server") from error
    if not isinstance(decoded, list) or len(decoded) != 2 + key_length:
        raise InvalidCursorError("not a cursor from this server")
    made_for, value, *key = decoded
    if made_for != sort_key:
        raise InvalidCursorError(f"the cursor was made for sort={made_for!s:.40}, not sort={sort_key}")
    if not _bindable(value) or not all(isinstance(part, str) and _bindable(part) for part in key):
        raise InvalidCursorError("not a cursor from this server")
    return value, tuple(key)


def decode_turns_cursor(cursor: str) -> tuple[str, int, str]:
    """(TURNS_FROM or TURNS_BEFORE, start time, trace id) of a session's turns cursor."""
    for kind in (TURNS_FROM, TURNS_BEFORE):
        try:
            start_ns, (trace_id,) = decode_cursor(cursor, kind)
        except InvalidCursorError:
            continue
        if isinstance(start_ns, int):
            return kind, start_ns, trace_id
    raise InvalidCursorError("not a cursor of a session's turns")
