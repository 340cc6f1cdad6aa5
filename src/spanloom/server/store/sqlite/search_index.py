"""Keeping the turn-text index (`turn_text_index`, schema.V8) equal to the traces' texts, off
the ingest path.

The index holds one entry per trace, under the trace's rowid: the trace's input and output
texts (the texts `q=` searches, read from the spans the trace names), as trigrams. It is
contentless (it stores no text) and `detail=none` (no positions), so it costs a few percent of
the texts' bytes; the price is that an entry can only be removed by naming the very texts it was
made from. A stored span's text never changes (spans are only ever inserted, or deleted with
their trace), so naming the spans an entry was made from is enough.

Tokenizing the texts doubled the writer's time per span, so the writer does not: it only notes
in `turn_text_pending` the traces whose entry is missing (new traces) or stale (their row now
names other spans; the note keeps the spans the stale entry was made from). The store's indexer
thread then indexes the noted traces a few at a time (`index_pending`). The invariant the reads
rely on: a trace without a note has an entry made from exactly the texts its row names now.
Reads therefore use the index for the traces without a note and read the texts of the noted ones
(search_terms.py), and keep their LIKE as the final check: results never depend on how far the
indexer has got.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from spanloom.server.store.base import Progress
from spanloom.server.store.json_values import to_json
from spanloom.server.store.sqlite.span_text import TRACE_INPUT, TRACE_OUTPUT, span_text

_IN = "t.trace_id IN (SELECT value FROM json_each(?))"
# The noted traces taken by one indexing step, as (trace rowid) in a JSON array.
_TAKEN = "p.trace_rowid IN (SELECT value FROM json_each(?))"
_INDEX = (
    "INSERT INTO turn_text_index (rowid, input, output)"
    f" SELECT t.rowid, {TRACE_INPUT}, {TRACE_OUTPUT} FROM traces t"
)
# FTS5's 'delete' command on a contentless table: the row's id and the values it was indexed
# with. For a trace without a note, those are the texts of the spans its row names...
_FORGET = (
    "INSERT INTO turn_text_index (turn_text_index, rowid, input, output)"
    f" SELECT 'delete', t.rowid, {TRACE_INPUT}, {TRACE_OUTPUT} FROM traces t"
)
# ... and for a noted trace whose entry is stale, those of the spans its note keeps.
_FORGET_STALE = (
    "INSERT INTO turn_text_index (turn_text_index, rowid, input, output)"
    f" SELECT 'delete', t.rowid, {span_text('input', 'p.input_span_id')},"
    f" {span_text('output', 'p.output_span_id')}"
    " FROM turn_text_pending p JOIN traces t ON t.rowid = p.trace_rowid WHERE p.indexed"
)
# Traces the indexer takes per transaction: a few milliseconds of tokenizing, so the writer
# never waits long for the write lock.
INDEX_CHUNK = 32


def note_new_traces(connection: sqlite3.Connection, trace_ids: list[str]) -> None:
    """Note these just-written traces as not indexed (the indexer will add their entries)."""
    if trace_ids:
        connection.execute(
            "INSERT OR IGNORE INTO turn_text_pending (trace_rowid, indexed)"
            f" SELECT t.rowid, 0 FROM traces t WHERE {_IN}",
            (to_json(trace_ids),),
        )


def note_moved_texts(
    connection: sqlite3.Connection, text_spans: Mapping[str, tuple[str | None, str | None]]
) -> None:
    """Of these stored traces (trace id -> the (input, output) span ids they are about to name),
    note those whose rows name other spans now, with the spans they name now: their entries are
    made from those (unless a note says otherwise already, which then stays). Called before the
    rows are written. Most changes to a stored trace (a late child span) keep both spans."""
    if not text_spans:
        return
    rows = connection.execute(
        f"SELECT t.trace_id, t.input_span_id, t.output_span_id FROM traces t WHERE {_IN}",
        (to_json(list(text_spans)),),
    ).fetchall()
    moved = [trace_id for trace_id, *spans in rows if tuple(spans) != text_spans[trace_id]]
    if moved:
        connection.execute(
            "INSERT OR IGNORE INTO turn_text_pending (trace_rowid, indexed, input_span_id, output_span_id)"
            f" SELECT t.rowid, 1, t.input_span_id, t.output_span_id FROM traces t WHERE {_IN}",
            (to_json(moved),),
        )


def forget_traces(connection: sqlite3.Connection, trace_ids: Iterable[str]) -> None:
    """Remove the entries and notes of these stored traces, before their rows go."""
    ids = to_json(list(trace_ids))
    connection.execute(
        f"{_FORGET} WHERE {_IN} AND t.rowid NOT IN (SELECT trace_rowid FROM turn_text_pending)", (ids,)
    )
    connection.execute(
        f"{_FORGET_STALE} AND p.trace_rowid IN (SELECT t.rowid FROM traces t WHERE {_IN})", (ids,)
    )
    connection.execute(
        f"DELETE FROM turn_text_pending WHERE trace_rowid IN (SELECT t.rowid FROM traces t WHERE {_IN})",
        (ids,),
    )


def index_pending(connection: sqlite3.Connection, limit: int = INDEX_CHUNK) -> int:
    """Index up to `limit` noted traces (forgetting their stale entries first) and drop their
    notes; returns how many. Run inside a write transaction."""
    taken = [
        rowid
        for (rowid,) in connection.execute(
            "SELECT trace_rowid FROM turn_text_pending ORDER BY trace_rowid LIMIT ?", (limit,)
        )
    ]
    if not taken:
        return 0
    ids = to_json(taken)
    connection.execute(f"{_FORGET_STALE} AND {_TAKEN}", (ids,))
    connection.execute(f"{_INDEX} WHERE t.rowid IN (SELECT value FROM json_each(?))", (ids,))
    connection.execute(
        "DELETE FROM turn_text_pending WHERE trace_rowid IN (SELECT value FROM json_each(?))", (ids,)
    )
    return len(taken)


def pending_count(connection: sqlite3.Connection) -> int:
    """How many traces wait for the indexer."""
    (count,) = connection.execute("SELECT COUNT(*) FROM turn_text_pending").fetchone()
    return int(count)


def note_all(connection: sqlite3.Connection, progress: Progress | None = None) -> None:
    """Note every stored trace as not indexed (the upgrade to schema 8): the indexer fills the
    index once the server runs, and searches read the texts of what it has not reached yet."""
    (total,) = connection.execute("SELECT COUNT(*) FROM traces").fetchone()
    if progress is not None and total:
        progress(f"upgrading the database to schema 8 (the text search index): {total:,} traces to index")
    connection.execute(
        "INSERT OR IGNORE INTO turn_text_pending (trace_rowid, indexed) SELECT rowid, 0 FROM traces"
    )
