"""SQL of the write path on `spans`: inserting rows, and reading back what a trace's rollup needs.

Statements that read many traces at once take their ids as one JSON array parameter
(`json_each(?)`): one statement per transaction instead of one per trace.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from spanloom.server.store.json_values import to_json
from spanloom.server.store.sqlite.resource_rows import store_resources
from spanloom.server.store.sqlite.span_rows import keep_resource_in_row
from spanloom.server.store.sqlite.statements import execute_values
from spanloom.server.store.trace_rollup import SPAN_FACT_COLUMNS, SpanFacts, facts_of_row

# The columns of a spans row, in the order span_rows.span_row builds it.
SPAN_ROW_COLUMNS = (
    "trace_id, span_id, parent_span_id, project, session_id, user_id, name, otel_kind, span_kind,"
    " start_ns, end_ns, status_code, status_message, model, prompt_tokens, completion_tokens,"
    " total_tokens, cost, has_input, has_output, input_key, input_at, output_key, output_at, tags,"
    " metadata, input, output, attributes, events, resource, input_from, output_from, lifted, resource_key"
)
_INSERT_SPANS = f"INSERT OR IGNORE INTO spans ({SPAN_ROW_COLUMNS})"


_INPUT_FROM, _OUTPUT_FROM, _RESOURCE_KEY = 31, 32, 34  # positions in a row (span_rows.span_row)
# A reference to a span that is itself a reference (its row was stored by an earlier batch that
# shared the text with another span) is pointed at the span that holds the text: so every
# reference is one step, which the reads (and their SQL) follow.
_ONE_STEP = (
    "UPDATE spans SET {ref} = (SELECT h.{ref} FROM spans h WHERE h.trace_id = spans.trace_id"
    " AND h.span_id = spans.{ref}) WHERE trace_id IN (SELECT value FROM json_each(?)) AND {ref} IS NOT NULL"
    " AND (SELECT h.{ref} FROM spans h WHERE h.trace_id = spans.trace_id AND h.span_id = spans.{ref})"
    " IS NOT NULL"
)


def insert_spans(
    connection: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], resources: Mapping[int, str]
) -> None:
    """Insert spans and the resources they name (key -> JSON); a span already stored under
    (trace_id, span_id) is kept as it is (a retry, or a second copy in the same batch: rows go in
    in order)."""
    if not rows:
        return
    taken = store_resources(connection, resources)
    if taken:  # rare: another resource's text holds the key, so these rows keep their own
        rows = [
            keep_resource_in_row(row, resources[row[_RESOURCE_KEY]]) if row[_RESOURCE_KEY] in taken else row
            for row in rows
        ]
    execute_values(connection, _INSERT_SPANS, len(rows[0]), rows)
    sharing = {row[0] for row in rows if row[_INPUT_FROM] is not None or row[_OUTPUT_FROM] is not None}
    if sharing:
        for column in ("input_from", "output_from"):
            # A fixed column name from this module.
            connection.execute(_ONE_STEP.format(ref=column), (to_json(list(sharing)),))


def select_span_facts(connection: sqlite3.Connection, trace_ids: Sequence[str]) -> dict[str, list[SpanFacts]]:
    """What a rollup needs of every stored span of these traces, by trace."""
    found: dict[str, list[SpanFacts]] = {}
    for trace_id, *row in connection.execute(
        f"SELECT trace_id, {SPAN_FACT_COLUMNS} FROM spans WHERE trace_id IN (SELECT value FROM json_each(?))",
        (to_json(list(trace_ids)),),
    ):
        found.setdefault(trace_id, []).append(facts_of_row(row))
    return found
