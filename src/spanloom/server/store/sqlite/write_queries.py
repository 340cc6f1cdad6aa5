"""SQL of the write path: span inserts and rollup rows. One function per statement, values bound.

Statements that read many traces at once take their ids as one JSON array parameter
(`json_each(?)`): one statement per transaction instead of one per trace.

Few SQLite steps per statement: pysqlite hands the GIL back around every step, that is every row
an ``executemany`` writes and every row a fetch returns, and under ingest another thread
(normalizing the next request) holds it in between, so each handover waits for that thread. A
commit of a few hundred spans spent three quarters of its time in those waits. So rows go in as
multi-row ``VALUES`` statements (`_execute_values`) and many-row reads of the rollups come back
as one JSON value (`_fetch_in_one_step`).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from spanloom.server.store.base import SpanRecord

INPUT_VALUE_KEY = "input.value"
OUTPUT_VALUE_KEY = "output.value"


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


def _parameter_limit(connection: sqlite3.Connection) -> int:
    """Bound parameters one statement may take: the library's own limit where Python can read it
    (3.11+), else SQLite's default for its version (999 before 3.32)."""
    getlimit = getattr(connection, "getlimit", None)
    if getlimit is not None:
        return int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    return 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


# Rows per statement at most: beyond this the statement's compile cost outweighs the steps saved.
_MAX_ROWS_PER_STATEMENT = 512


@functools.lru_cache(maxsize=256)
def _values_statement(head: str, width: int, rows: int, tail: str) -> str:
    row = f"({', '.join('?' * width)})"
    return f"{head} VALUES {', '.join([row] * rows)}{tail}"


def _execute_values(
    connection: sqlite3.Connection, head: str, width: int, rows: Iterable[Sequence[Any]], tail: str = ""
) -> None:
    """``head VALUES (...), (...) tail`` for all `rows`, a few statements in all.

    Row counts per statement are powers of two, so a handful of distinct statements cover every
    batch size and stay in the connection's statement cache.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    most = max(1, min(_MAX_ROWS_PER_STATEMENT, _parameter_limit(connection) // width))
    most = 1 << (most.bit_length() - 1)
    done = 0
    while done < len(rows):
        count = min(most, 1 << ((len(rows) - done).bit_length() - 1))
        chunk = rows[done : done + count]
        connection.execute(
            _values_statement(head, width, count, tail), tuple(itertools.chain.from_iterable(chunk))
        )
        done += count


def _fetch_in_one_step(
    connection: sqlite3.Connection, select: str, parameters: Sequence[Any], width: int
) -> list[tuple[Any, ...]]:
    """The rows of `select` (of `width` columns), fetched as one JSON array: one step, not one per
    row. For INTEGER and TEXT columns, and REAL ones whose values have at most 15 significant
    digits (SQLite writes reals into JSON with 15), which every caller here reads. Row order is
    not guaranteed."""
    names = ", ".join(f"c{index}" for index in range(width))
    (packed,) = connection.execute(
        f"WITH fetched ({names}) AS ({select}) SELECT json_group_array(json_array({names})) FROM fetched",
        parameters,
    ).fetchone()
    return [tuple(row) for row in json.loads(packed)]


def _upsert(table: str, columns: Sequence[str]) -> tuple[str, str]:
    """The head and tail of an INSERT (for `_execute_values`) of rows keyed by their first column
    that updates a row in place if it exists (unlike INSERT OR REPLACE, which deletes and
    reinserts it and so rewrites every index entry)."""
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns[1:])
    return (
        f"INSERT INTO {table} ({', '.join(columns)})",
        f" ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}",
    )


def _source_key(attributes: dict[str, Any], text: str | None, preferred: str) -> tuple[str, int] | None:
    """The attribute (and its position) that holds exactly `text`, if any."""
    if text is None:
        return None
    # Normalization hands over the attribute's own string object, so identity finds it without
    # comparing kilobytes of text; input.value/output.value are also matched by equality.
    for position, (key, value) in enumerate(attributes.items()):
        if value is text or (key == preferred and value == text):
            return key, position
    return None


def span_row(span: SpanRecord, json_cache: dict[int, str]) -> tuple[Any, ...]:
    """The spans row of one record. The input/output attribute is left out of `attributes` (the
    input/output columns already hold that text, and it is the bulk of an LLM span): this halves
    what is written per span. `json_cache` serializes a resource shared by many spans once."""
    attributes = span.attributes
    moved_input = _source_key(attributes, span.input, INPUT_VALUE_KEY)
    moved_output = _source_key(attributes, span.output, OUTPUT_VALUE_KEY)
    if moved_output and moved_input and moved_output[0] == moved_input[0]:
        moved_output = None
    if moved_input or moved_output:
        dropped = {moved[0] for moved in (moved_input, moved_output) if moved}
        attributes = {key: value for key, value in attributes.items() if key not in dropped}
    resource_json = json_cache.get(id(span.resource))
    if resource_json is None:
        resource_json = json_cache[id(span.resource)] = to_json(span.resource)
    return (
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.project,
        span.session_id,
        span.user_id,
        span.name,
        span.otel_kind,
        span.span_kind,
        span.start_time_ns,
        span.end_time_ns,
        span.status_code,
        span.status_message,
        span.model,
        span.prompt_tokens,
        span.completion_tokens,
        span.total_tokens,
        span.cost,
        span.input is not None,
        span.output is not None,
        moved_input[0] if moved_input else None,
        moved_input[1] if moved_input else None,
        moved_output[0] if moved_output else None,
        moved_output[1] if moved_output else None,
        to_json(span.tags) if span.tags else "[]",
        to_json(span.metadata) if span.metadata else "{}",
        span.input,
        span.output,
        to_json(attributes),
        to_json(span.events) if span.events else "[]",
        resource_json,
    )


class PreparedSpans(list):  # type: ignore[type-arg]  # of SpanRecord
    """Spans with their rows (`span_row`) built beforehand, in the thread that hands them to the
    store: the writer thread is the one serial step of ingest, so it should only run SQL.

    `rollups` (set by `rollups.prepare`): each trace's rollup from these spans alone, which is the
    trace's whole rollup when it has no stored span yet; None for a trace these spans share with
    another batch of the same transaction.
    """

    __slots__ = ("rollups", "rows")

    def __init__(self, spans: Iterable[SpanRecord] = (), rows: list[tuple[Any, ...]] | None = None) -> None:
        super().__init__(spans)
        self.rows = rows
        self.rollups: dict[str, Any] | None = None


def prepare(spans: Iterable[SpanRecord]) -> PreparedSpans:
    json_cache: dict[int, str] = {}
    prepared = PreparedSpans(spans)
    prepared.rows = [span_row(span, json_cache) for span in prepared]
    return prepared


def concatenate(batches: Iterable[Sequence[SpanRecord]]) -> PreparedSpans:
    """Several batches as one; rows are kept only if every batch came with them, and a trace's
    precomputed rollup only if its spans all came in one batch."""
    combined = PreparedSpans(rows=[])
    combined.rollups = {}
    for spans in batches:
        combined.extend(spans)
        rows = getattr(spans, "rows", None)
        if rows is None or combined.rows is None:
            combined.rows = None
        else:
            combined.rows.extend(rows)
        rollups = getattr(spans, "rollups", None) or {}
        for trace_id, rollup in rollups.items():
            # Seen in an earlier batch too: this batch's rollup covers only part of the trace.
            combined.rollups[trace_id] = None if trace_id in combined.rollups else rollup
        for span in spans:
            if span.trace_id not in rollups:
                combined.rollups[span.trace_id] = None
    return combined


def rows_of(spans: Sequence[SpanRecord]) -> list[tuple[Any, ...]]:
    """The spans rows of `spans`: prepared ones as they came, others built here."""
    rows = getattr(spans, "rows", None)
    if rows is None:
        json_cache: dict[int, str] = {}
        rows = [span_row(span, json_cache) for span in spans]
    return rows


_SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, project, session_id, user_id, name, otel_kind, span_kind,"
    " start_ns, end_ns, status_code, status_message, model, prompt_tokens, completion_tokens,"
    " total_tokens, cost, has_input, has_output, input_key, input_at, output_key, output_at, tags,"
    " metadata, input, output, attributes, events, resource"
)
_INSERT_SPANS = f"INSERT OR IGNORE INTO spans ({_SPAN_COLUMNS})"


def insert_spans(connection: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert spans; one already stored under (trace_id, span_id) is kept as it is (a retry, or
    a second copy in the same batch: rows go in in order)."""
    if rows:
        _execute_values(connection, _INSERT_SPANS, len(rows[0]), rows)


def select_stored_spans(connection: sqlite3.Connection, trace_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """The small columns of every span of these traces, by trace then (start, span id): the
    layout of `trace_rollup.SpanFacts` with the trace id first."""
    return connection.execute(
        "SELECT trace_id, span_id, parent_span_id, project, session_id, user_id, name, span_kind,"
        " start_ns, end_ns, status_code, total_tokens, cost, tags, metadata, has_input, has_output"
        " FROM spans WHERE trace_id IN (SELECT value FROM json_each(?))"
        " ORDER BY trace_id, start_ns, span_id",
        (to_json(list(trace_ids)),),
    ).fetchall()


# The columns of a trace row in order, without the input/output span ids at its end.
TRACE_COLUMNS = (
    "trace_id",
    "project",
    "session_id",
    "user_id",
    "root_span_id",
    "name",
    "span_kind",
    "start_ns",
    "end_ns",
    "latency_ms",
    "span_count",
    "error_count",
    "total_tokens",
    "cost",
    "cost_nanos",
    "status",
    "has_input",
    "has_output",
    "labeled",
    "tags",
    "metadata",
)
_UPSERT_TRACE = _upsert("traces", (*TRACE_COLUMNS, "input_span_id", "output_span_id"))


def select_traces(connection: sqlite3.Connection, trace_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """The stored rows (TRACE_COLUMNS) of those of these traces that have one."""
    return connection.execute(
        f"SELECT {', '.join(TRACE_COLUMNS)} FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))",
        (to_json(list(trace_ids)),),
    ).fetchall()


def select_trace_span_counts(
    connection: sqlite3.Connection, trace_ids: Sequence[str]
) -> list[tuple[str, int]]:
    """(trace id, stored span count) of those of these traces that have a row (ingest's budget)."""
    return connection.execute(
        "SELECT trace_id, span_count FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))",
        (to_json(list(trace_ids)),),
    ).fetchall()


def upsert_traces(connection: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    """Write trace rows (TRACE_COLUMNS plus input_span_id, output_span_id)."""
    _execute_values(connection, _UPSERT_TRACE[0], len(TRACE_COLUMNS) + 2, rows, _UPSERT_TRACE[1])


# A session's rollup is recounted from the covering index traces_by_session by four statements
# for all the sessions of a transaction, which leave the per-turn work to SQLite (C, without the
# GIL) and bring into Python only what it cannot do cheaply: fetching every turn's columns to add
# them up in Python cost a third of the writer's time once sessions had a few dozen turns. (One
# statement with window functions for turn order and percentiles was four times slower still.)
_IN_SESSIONS = "FROM traces INDEXED BY traces_by_session WHERE session_id IN (SELECT value FROM json_each(?))"
SESSION_TOTAL_COLUMNS = (
    "session_id",
    "trace_count",
    "start_ns",
    "end_ns",
    "total_tokens",
    "cost_nanos",
    "error_count",
    "labeled",
)


def select_session_totals(
    connection: sqlite3.Connection, session_ids: Sequence[str]
) -> list[tuple[Any, ...]]:
    """SESSION_TOTAL_COLUMNS of those of these sessions that have traces."""
    return _fetch_in_one_step(
        connection,
        "SELECT session_id, COUNT(*), MIN(start_ns), MAX(end_ns), SUM(total_tokens), SUM(cost_nanos),"
        f" SUM(error_count > 0), MAX(labeled) {_IN_SESSIONS} GROUP BY session_id",
        (to_json(list(session_ids)),),
        len(SESSION_TOTAL_COLUMNS),
    )


def select_session_latencies(
    connection: sqlite3.Connection, session_ids: Sequence[str]
) -> dict[str, list[float]]:
    """The latency of every trace of these sessions, by session. Each session's come as one text
    (a latency, integer nanoseconds over 1e6, has at most 15 significant digits below 11 days,
    so the text SQLite writes reads back as the very same float)."""
    rows = _fetch_in_one_step(
        connection,
        f"SELECT session_id, group_concat(latency_ms) {_IN_SESSIONS} GROUP BY session_id",
        (to_json(list(session_ids)),),
        2,
    )
    return {session_id: [float(text) for text in latencies.split(",")] for session_id, latencies in rows}


# Each an index seek into the session's turns in order (start, trace id): no sort, no scan.
_TURNS = "FROM traces INDEXED BY traces_by_session WHERE session_id = j.value"
SESSION_FIRST_COLUMNS = ("session_id", "project", "user_id", "first_input_trace", "last_output_trace")


def select_session_firsts(
    connection: sqlite3.Connection, session_ids: Sequence[str]
) -> list[tuple[Any, ...]]:
    """SESSION_FIRST_COLUMNS of each of these sessions: the first turn's project, the first user
    named, the first turn with an input and the last with an output (None where there is none)."""
    return _fetch_in_one_step(
        connection,
        f"SELECT j.value, (SELECT project {_TURNS} ORDER BY start_ns, trace_id LIMIT 1),"
        f" (SELECT user_id {_TURNS} AND user_id <> '' ORDER BY start_ns, trace_id LIMIT 1),"
        f" (SELECT trace_id {_TURNS} AND has_input ORDER BY start_ns, trace_id LIMIT 1),"
        f" (SELECT trace_id {_TURNS} AND has_output ORDER BY start_ns DESC, trace_id DESC LIMIT 1)"
        " FROM json_each(?) AS j",
        (to_json(list(session_ids)),),
        len(SESSION_FIRST_COLUMNS),
    )


def select_session_user_counts(
    connection: sqlite3.Connection, pairs: Sequence[tuple[str, str]]
) -> list[tuple[str, str, int]]:
    """(session id, user id, traces of the session naming the user) for these pairs."""
    return _fetch_in_one_step(  # type: ignore[return-value]
        connection,
        "SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'),"
        " (SELECT COUNT(*) FROM traces INDEXED BY traces_by_session"
        " WHERE session_id = json_extract(j.value, '$[0]') AND user_id = json_extract(j.value, '$[1]'))"
        " FROM json_each(?) AS j",
        (to_json([list(pair) for pair in pairs]),),
        3,
    )


def select_session_labels(connection: sqlite3.Connection, session_id: str) -> list[tuple[str, str]]:
    """(tags, metadata) of the session's traces that have any, in turn order."""
    return connection.execute(
        "SELECT tags, metadata FROM traces WHERE session_id = ? AND labeled ORDER BY start_ns, trace_id",
        (session_id,),
    ).fetchall()


# The columns of a session row, in order.
SESSION_COLUMNS = (
    "session_id",
    "project",
    "user_id",
    "trace_count",
    "start_ns",
    "end_ns",
    "total_tokens",
    "cost",
    "cost_nanos",
    "error_count",
    "latency_p50_ms",
    "latency_p95_ms",
    "first_input_trace",
    "last_output_trace",
    "tags",
    "metadata",
)
_UPSERT_SESSION = _upsert("sessions", SESSION_COLUMNS)


def select_session(connection: sqlite3.Connection, session_id: str) -> tuple[Any, ...] | None:
    return connection.execute(
        f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions WHERE session_id = ?", (session_id,)
    ).fetchone()


def upsert_sessions(connection: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    _execute_values(connection, _UPSERT_SESSION[0], len(SESSION_COLUMNS), rows, _UPSERT_SESSION[1])


def delete_sessions(connection: sqlite3.Connection, session_ids: Iterable[str]) -> None:
    connection.executemany("DELETE FROM sessions WHERE session_id = ?", [(id_,) for id_ in session_ids])


# The columns of a user row, in order.
USER_COLUMNS = (
    "user_id",
    "project",
    "session_count",
    "trace_count",
    "total_tokens",
    "cost",
    "cost_nanos",
    "error_count",
    "first_seen_ns",
    "last_seen_ns",
    "first_trace_id",
)
_UPSERT_USER = _upsert("users", USER_COLUMNS)


def select_users(connection: sqlite3.Connection, user_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """The stored rows (USER_COLUMNS) of these users. Their `cost` may come rounded to 15 digits:
    the writer recomputes it from the exact `cost_nanos`."""
    return _fetch_in_one_step(
        connection,
        f"SELECT {', '.join(USER_COLUMNS)} FROM users WHERE user_id IN (SELECT value FROM json_each(?))",
        (to_json(list(user_ids)),),
        len(USER_COLUMNS),
    )


def select_user_totals(connection: sqlite3.Connection, user_id: str) -> tuple[Any, ...]:
    """(traces, sessions, tokens, cost nanos, failing traces, first start, last end) of a user."""
    return connection.execute(
        "SELECT COUNT(*), COUNT(DISTINCT session_id), COALESCE(SUM(total_tokens), 0),"
        " COALESCE(SUM(cost_nanos), 0), COALESCE(SUM(error_count > 0), 0), MIN(start_ns), MAX(end_ns)"
        " FROM traces WHERE user_id = ?",
        (user_id,),
    ).fetchone()


def select_user_first_trace(connection: sqlite3.Connection, user_id: str) -> tuple[str, str] | None:
    """(trace_id, project) of the user's first trace by (start, trace id)."""
    return connection.execute(
        "SELECT trace_id, project FROM traces WHERE user_id = ? ORDER BY start_ns, trace_id LIMIT 1",
        (user_id,),
    ).fetchone()


def upsert_users(connection: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    _execute_values(connection, _UPSERT_USER[0], len(USER_COLUMNS), rows, _UPSERT_USER[1])


def delete_user(connection: sqlite3.Connection, user_id: str) -> None:
    connection.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
