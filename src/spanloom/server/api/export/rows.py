"""What an export holds, row by row: a session, a turn, or a session as a chat example, as the
JSON API shows them, and the columns (with their types) the tabular formats lay them out in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

from spanloom.server.api import serialize
from spanloom.server.store.base import SessionSummary, SessionTurns

# How a column is written in CSV and Parquet: JSON values (lists, objects) as JSON text, times
# as ISO 8601 text in CSV and as UTC timestamps in Parquet.
ColumnType = Literal["text", "integer", "number", "boolean", "time", "json"]


class Column(NamedTuple):
    name: str
    type: ColumnType


# The members of GET /api/sessions' items, in their order.
SESSION_COLUMNS = (
    Column("session_id", "text"),
    Column("user_id", "text"),
    Column("project", "text"),
    Column("status", "text"),
    Column("trace_count", "integer"),
    Column("first_input", "text"),
    Column("last_output", "text"),
    Column("start_time", "time"),
    Column("end_time", "time"),
    Column("duration_ms", "number"),
    Column("total_tokens", "integer"),
    Column("cost", "number"),
    Column("error_count", "integer"),
    Column("latency_p50_ms", "number"),
    Column("latency_p95_ms", "number"),
    Column("tags", "json"),
    Column("metadata", "json"),
    Column("evaluations", "json"),
)
# The session's keys, then the members of GET /api/sessions/{id}'s turns, in their order.
TURN_COLUMNS = (
    Column("session_id", "text"),
    Column("project", "text"),
    Column("user_id", "text"),
    Column("turn", "integer"),  # from 1, in time order
    Column("trace_id", "text"),
    Column("name", "text"),
    Column("start_time", "time"),
    Column("input", "text"),
    Column("output", "text"),
    Column("latency_ms", "number"),
    Column("total_tokens", "integer"),
    Column("cost", "number"),
    Column("status", "text"),
    Column("error_count", "integer"),
    Column("span_count", "integer"),
    Column("evaluations", "json"),
    Column("evaluation_summary", "json"),
    Column("failed", "boolean"),
    Column("error", "boolean"),
    Column("failed_evaluations", "json"),
    Column("input_text", "text"),
    Column("output_text", "text"),
)
DATASET_COLUMNS = (Column("messages", "json"), Column("metadata", "json"))


def session_row(session: SessionSummary, idle_before_ns: int) -> dict[str, Any]:
    return serialize.session_json(session, idle_before_ns)


def turn_rows(session: SessionSummary, turns: SessionTurns) -> Iterator[dict[str, Any]]:
    for number, turn in enumerate(turns.turns, start=1):
        yield {
            "session_id": session.session_id,
            "project": session.project,
            "user_id": session.user_id,
            "turn": number,
            **serialize.turn_json(turn),
        }
