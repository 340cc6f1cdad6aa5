"""Sessions whose new turns all come after the turns they held: their first user, first input,
last output and labels follow from the stored row and the new turns alone, without reading the
session's turns back (select_session_firsts, select_session_labels).

That is nearly every session ingest touches: a conversation's next turn starts after the last
one ended. The counts, sums and latencies still come from all of the session's turns
(select_session_totals, one pass in SQLite). A session a stored trace left, joined or changed in,
and one whose new turns start before its stored turns ended, is recounted whole: the order of
its turns decides which is first.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence

from spanloom.server.store.sqlite.session_writes import SessionFirsts, SessionRow
from spanloom.server.store.trace_rollup import TraceRow, labels_json, merge_labels


def appended(
    stored: Mapping[str, SessionRow],
    new_turns: Mapping[str, Sequence[TraceRow]],
    disturbed: Collection[str],
) -> dict[str, list[TraceRow]]:
    """The sessions (of one project) that only gained new traces, each starting after every
    stored turn ended, with those traces in turn order (start, then trace id), by session id."""
    found: dict[str, list[TraceRow]] = {}
    for session_id, turns in new_turns.items():
        row = stored.get(session_id)
        if row is None or session_id in disturbed or any(turn.start_ns <= row.end_ns for turn in turns):
            continue
        found[session_id] = sorted(turns, key=lambda turn: (turn.start_ns, turn.trace_id))
    return found


def firsts_after(row: SessionRow, turns: Sequence[TraceRow]) -> SessionFirsts:
    """`row`'s session's firsts once `turns` (in order, all after its stored ones) are added."""
    user_id = row.user_id
    if user_id is None:
        user_id = next((turn.user_id for turn in turns if turn.user_id), None)
    first_input = row.first_input_trace
    if first_input is None:
        first_input = next((turn.trace_id for turn in turns if turn.has_input), None)
    last_output = next((turn.trace_id for turn in reversed(turns) if turn.has_output), row.last_output_trace)
    return SessionFirsts(row.session_id, user_id, first_input, last_output)


def labels_after(row: SessionRow, turns: Sequence[TraceRow]) -> tuple[str, str]:
    """(tags, metadata) JSON of `row`'s session once `turns` are added: the stored labels are
    those of its earlier turns merged, and merging goes on from them in turn order."""
    tags, metadata = merge_labels(
        [
            (json.loads(row.tags), json.loads(row.metadata)),
            *((json.loads(turn.tags), json.loads(turn.metadata)) for turn in turns if turn.labeled),
        ]
    )
    return labels_json(tags, metadata)
