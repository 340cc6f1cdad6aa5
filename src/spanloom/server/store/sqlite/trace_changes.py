"""What a transaction changed of its traces, as the session and user rollups read it."""

from __future__ import annotations

from dataclasses import dataclass

from spanloom.server.store.trace_rollup import TraceRow

# (project, session or user id)
Key = tuple[str, str]


@dataclass(slots=True)
class TraceChange:
    """One trace's row before this transaction (None for a new trace) and now."""

    old: TraceRow | None
    new: TraceRow
    input_span_id: str | None
    output_span_id: str | None
