"""Keeping the turn-text index (`turn_text_index`, schema.V8) equal to the traces' texts.

The index holds one entry per trace, under the trace's rowid: the trace's input and output
texts (the texts `q=` searches, read from the spans the trace names), as trigrams. It is
contentless (it stores no text) and `detail=none` (no positions), so it costs a few percent of
the texts' bytes; the price is that an entry can only be removed by naming the very texts it was
made from. Those are always at hand: a stored span's text never changes (spans are only ever
inserted, or deleted with their trace), so the texts of the spans a trace names *now* are the
texts its entry was made from. Hence the order in every path: forget an entry (from the trace
row as it is) before the row names other spans or goes, and index it after.

Reads use the index as a candidate filter only and keep their LIKE as the final check
(search_terms.py), so an entry that is stale could cost time, never a wrong result; these paths
keep it from ever being stale.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence

from spanloom.server.store.base import Progress
from spanloom.server.store.json_values import to_json
from spanloom.server.store.sqlite.trace_reads import TRACE_INPUT, TRACE_OUTPUT

_IN = "t.trace_id IN (SELECT value FROM json_each(?))"
_INDEX = (
    "INSERT INTO turn_text_index (rowid, input, output)"
    f" SELECT t.rowid, {TRACE_INPUT}, {TRACE_OUTPUT} FROM traces t"
)
# FTS5's 'delete' command on a contentless table: the row's id and the values it was indexed with.
_FORGET = (
    "INSERT INTO turn_text_index (turn_text_index, rowid, input, output)"
    f" SELECT 'delete', t.rowid, {TRACE_INPUT}, {TRACE_OUTPUT} FROM traces t"
)
# Traces indexed per statement when the whole index is built (an upgrade).
_REBUILD_CHUNK = 2000
_PROGRESS_SECONDS = 1.0


def index_traces(connection: sqlite3.Connection, trace_ids: Sequence[str]) -> None:
    """Add the entries of these traces, as their rows now are (new traces, or ones just forgotten)."""
    if trace_ids:
        connection.execute(f"{_INDEX} WHERE {_IN}", (to_json(list(trace_ids)),))


def forget_traces(connection: sqlite3.Connection, trace_ids: Iterable[str]) -> None:
    """Remove the entries of these stored traces: before their rows change texts, or go."""
    ids = list(trace_ids)
    if ids:
        connection.execute(f"{_FORGET} WHERE {_IN}", (to_json(ids),))


def forget_moved_texts(
    connection: sqlite3.Connection, text_spans: Mapping[str, tuple[str | None, str | None]]
) -> list[str]:
    """Of these stored traces (trace id -> the (input, output) span ids they are about to name),
    forget those whose rows name other spans now, and return them: to index again once their
    rows are written. Most changes to a stored trace (a late child span) keep both."""
    if not text_spans:
        return []
    rows = connection.execute(
        f"SELECT t.trace_id, t.input_span_id, t.output_span_id FROM traces t WHERE {_IN}",
        (to_json(list(text_spans)),),
    ).fetchall()
    moved = [trace_id for trace_id, *spans in rows if tuple(spans) != text_spans[trace_id]]
    forget_traces(connection, moved)
    return moved


def rebuild(connection: sqlite3.Connection, progress: Progress | None = None) -> None:
    """Index every stored trace (the upgrade to schema 8), a chunk of traces per statement."""
    (total,) = connection.execute("SELECT COUNT(*) FROM traces").fetchone()
    if progress is not None and total:
        progress(f"upgrading the database to schema 8 (the text search index): {total:,} traces")
    after, done, shown = -1, 0, time.monotonic()
    while True:
        row = connection.execute(
            "SELECT MAX(rowid), COUNT(*) FROM"
            " (SELECT rowid FROM traces WHERE rowid > ? ORDER BY rowid LIMIT ?)",
            (after, _REBUILD_CHUNK),
        ).fetchone()
        if not row[1]:
            return
        connection.execute(f"{_INDEX} WHERE t.rowid > ? AND t.rowid <= ?", (after, row[0]))
        after, done = row[0], done + row[1]
        if progress is not None and time.monotonic() - shown >= _PROGRESS_SECONDS:
            progress(f"  {done:,} of {total:,} traces")
            shown = time.monotonic()
