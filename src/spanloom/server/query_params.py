"""Parsing list parameters (filters, sort, order, limit, cursor) from a query string.

The JSON API uses it now and the HTML pages will use it too, so a filter means the same thing
everywhere. Errors name the parameter: `BadParameterError("limit", "must be ...")`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from spanloom.server.store.base import MAX_PAGE_SIZE, ListQuery, accepts_eval_sort
from spanloom.server.store.cursor import TRACE_SPANS_CURSOR, InvalidCursorError, decode_cursor
from spanloom.server.store.evaluation_types import EVAL_SORT_PREFIX, MAX_EVALUATION_NAME

DEFAULT_PAGE_SIZE = 50
# Spans of one trace per page of GET /api/traces/{id}: most traces fit in one.
DEFAULT_TRACE_SPANS = 1_000
MAX_TRACE_SPANS = 10_000
METADATA_PREFIX = "metadata."
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_STATUSES = ("UNSET", "OK", "ERROR")


class BadParameterError(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class QueryParams(Protocol):
    """What Starlette's QueryParams offers (and a MultiDict does)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def getlist(self, key: str) -> list[str]: ...

    def multi_items(self) -> list[tuple[str, str]]: ...


# Times are stored as signed 64-bit nanoseconds: about ±292 years around 1970.
_MAX_TIME_NS = 2**63 - 1


def parse_time(parameter: str, raw: str) -> int:
    """ISO 8601 (naive means UTC) or Unix seconds, as nanoseconds since the epoch."""
    try:
        seconds = float(raw)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds):
            raise BadParameterError(parameter, f"expected a finite number of Unix seconds, got {raw!r}")
        if abs(seconds) > _MAX_TIME_NS / 1e9:
            raise BadParameterError(parameter, f"{raw!r} is outside the years 1678 to 2262")
        nanoseconds = int(seconds * 1e9)
    else:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise BadParameterError(parameter, f"expected ISO 8601 or Unix seconds, got {raw!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        nanoseconds = int(moment.timestamp() * 1_000_000) * 1000
    if abs(nanoseconds) > _MAX_TIME_NS:
        raise BadParameterError(parameter, f"{raw!r} is outside the years 1678 to 2262")
    return nanoseconds


def _bool(parameter: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadParameterError(parameter, f"expected true or false, got {raw!r}")


def _choice(parameter: str, raw: str, choices: Sequence[str]) -> str:
    if raw not in choices:
        raise BadParameterError(parameter, f"expected one of {', '.join(choices)}, got {raw!r}")
    return raw


def _sort(raw: str, sort_keys: Sequence[str]) -> str:
    """A key from `sort_keys`, or ``eval:NAME`` on the lists that keep evaluation aggregates
    (sessions and users). NAME is only checked for shape: the store binds it as a parameter."""
    if raw.startswith(EVAL_SORT_PREFIX) and accepts_eval_sort(sort_keys):
        name = raw[len(EVAL_SORT_PREFIX) :]
        if not name.strip() or len(name) > MAX_EVALUATION_NAME or not name.isprintable():
            raise BadParameterError("sort", f"eval:NAME needs an evaluation name, got {raw!r:.80}")
        return raw
    return _choice("sort", raw, sort_keys)


def _text(params: QueryParams, name: str) -> str | None:
    value = params.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def parse_list_query(params: QueryParams, sort_keys: Sequence[str]) -> ListQuery:
    """A `ListQuery` from the query string; `sort_keys[0]` is the default sort."""
    query = ListQuery(
        project=_text(params, "project"),
        user_id=_text(params, "user_id"),
        session_id=_text(params, "session_id"),
        q=_text(params, "q"),
        span_kind=(_text(params, "span_kind") or "").upper() or None,
        model=_text(params, "model"),
        tags=[tag for tag in params.getlist("tag") if tag],
    )
    for name in ("start", "end"):
        raw = _text(params, name)
        if raw is not None:
            setattr(query, f"{name}_ns", parse_time(name, raw))
    raw = _text(params, "has_error")
    if raw is not None:
        query.has_error = _bool("has_error", raw)
    raw = _text(params, "status")
    if raw is not None:
        query.status = _choice("status", raw.upper(), _STATUSES)  # type: ignore[assignment]
    query.sort = _sort(_text(params, "sort") or sort_keys[0], sort_keys)
    query.order = _choice("order", (_text(params, "order") or "desc").lower(), ("asc", "desc"))  # type: ignore[assignment]
    raw = _text(params, "limit")
    if raw is not None:
        if not raw.isdecimal() or len(raw) > 9 or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise BadParameterError("limit", f"expected an integer from 1 to {MAX_PAGE_SIZE}, got {raw!r}")
        query.limit = int(raw)
    else:
        query.limit = DEFAULT_PAGE_SIZE
    cursor = _text(params, "cursor")
    if cursor is not None:
        try:
            decode_cursor(cursor, query.sort)
        except InvalidCursorError as error:
            raise BadParameterError("cursor", str(error)) from None
        query.cursor = cursor
    for key, value in params.multi_items():
        if key.startswith(METADATA_PREFIX):
            name = key[len(METADATA_PREFIX) :]
            if not name:
                raise BadParameterError(key, "expected metadata.KEY=VALUE")
            query.metadata.append((name, value))
    return query


def parse_trace_span_page(params: QueryParams) -> tuple[int, str | None]:
    """(`limit`, `cursor`) of a trace's span page: a limit from 1 to MAX_TRACE_SPANS
    (DEFAULT_TRACE_SPANS when absent) and a cursor a previous page handed out."""
    raw = _text(params, "limit")
    if raw is None:
        limit = DEFAULT_TRACE_SPANS
    elif raw.isdecimal() and len(raw) <= 9 and 1 <= int(raw) <= MAX_TRACE_SPANS:
        limit = int(raw)
    else:
        raise BadParameterError("limit", f"expected an integer from 1 to {MAX_TRACE_SPANS}, got {raw!r}")
    cursor = _text(params, "cursor")
    if cursor is not None:
        try:
            decode_cursor(cursor, TRACE_SPANS_CURSOR)
        except InvalidCursorError as error:
            raise BadParameterError("cursor", str(error)) from None
    return limit, cursor
