"""A session's figures as its trace rows give them (`Tally`), and the sessions row they make.

Both ways of recounting a session end here: `rollups.session_rows` (every batch on a ClickHouse
server; recovery and retention everywhere) reads the tallies of the sessions it recounts with
`select_tallies`, and the embedded writer (session_tallies.py) keeps tallies and moves each changed
trace in and out of them. One query and one row builder for both, so the two ways can differ only
in how they arrive at a tally.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from spanloom.server.store.json_values import to_json
from spanloom.server.store.trace_rollup import TraceRow, merge_labels, percentile, saturated

Order = tuple[int, str]  # (start_ns, trace_id): the order "first" and "last" go by


@dataclass(slots=True)
class Tally:
    trace_count: int = 0
    span_count: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    tokens: int = 0
    cost_nanos: int = 0
    errors: int = 0  # traces with an error
    first_user: tuple[int, str, str] | None = None  # (start_ns, trace_id, user_id)
    first_input: Order | None = None
    last_output: Order | None = None
    latencies: list[float] = field(default_factory=list)  # sorted
    labels: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # trace -> (start, tags, metadata)
    users: dict[str, int] = field(default_factory=dict)  # user -> traces
    # (trace id, text) of the first input and the last output, when short enough to keep.
    input_text: tuple[str, str | None] | None = None
    output_text: tuple[str, str | None] | None = None

    def copy(self) -> Tally:
        return Tally(
            self.trace_count,
            self.span_count,
            self.start_ns,
            self.end_ns,
            self.tokens,
            self.cost_nanos,
            self.errors,
            self.first_user,
            self.first_input,
            self.last_output,
            list(self.latencies),
            dict(self.labels),
            dict(self.users),
            self.input_text,
            self.output_text,
        )

    def remove(self, old: TraceRow, new: TraceRow) -> bool:
        """Take out a trace that stays in the session (`new`, its new figures, follow with `add`);
        False when the tally cannot follow exactly."""
        order = (old.start_ns, old.trace_id)
        at = bisect.bisect_left(self.latencies, old.latency_ms)
        if at == len(self.latencies) or self.latencies[at] != old.latency_ms:
            return False
        if order == self.last_output and new.start_ns != old.start_ns:
            return False  # the last output moved earlier: only a recount knows what is last now
        del self.latencies[at]
        self.trace_count -= 1
        self.span_count -= old.span_count
        self.tokens -= old.total_tokens
        self.cost_nanos -= old.cost_nanos
        self.errors -= old.error_count > 0
        self.labels.pop(old.trace_id, None)
        if old.user_id:
            self._count_user(old.user_id, -1)
        return True

    def add(self, new: TraceRow) -> None:
        """Put in a trace. The extremes only ever widen: a trace's start moves earlier and its end
        later as spans arrive, and it gains an input or output, never loses one (`follows`)."""
        order = (new.start_ns, new.trace_id)
        bisect.insort(self.latencies, new.latency_ms)
        self.trace_count += 1
        self.span_count += new.span_count
        self.tokens += new.total_tokens
        self.cost_nanos += new.cost_nanos
        self.errors += new.error_count > 0
        self.start_ns = new.start_ns if self.start_ns is None else min(self.start_ns, new.start_ns)
        self.end_ns = new.end_ns if self.end_ns is None else max(self.end_ns, new.end_ns)
        if new.user_id:
            self._count_user(new.user_id, 1)
            candidate = (*order, new.user_id)
            if self.first_user is None or candidate[:2] < self.first_user[:2]:
                self.first_user = candidate
        if new.has_input and (self.first_input is None or order < self.first_input):
            self.first_input = order
        if new.has_output and (self.last_output is None or order > self.last_output):
            self.last_output = order
        if new.labeled:
            self.labels[new.trace_id] = (new.start_ns, new.tags, new.metadata)

    def _count_user(self, user: str, step: int) -> None:
        count = self.users.get(user, 0) + step
        if count:
            self.users[user] = count
        else:
            self.users.pop(user, None)


def follows(old: TraceRow, new: TraceRow) -> bool:
    """Whether a trace's change (within one session) keeps every extreme of its session's tally
    exact: its user stays, its window only widens, its input and output stay once there."""
    return (
        old.user_id == new.user_id
        and new.start_ns <= old.start_ns
        and new.end_ns >= old.end_ns
        and new.has_input >= old.has_input
        and new.has_output >= old.has_output
    )


# Sums as Int128, so the saturation at the 64-bit limit is ours, not a wrap-around; the extremes
# with the keys they go by, and each labeled trace's id.
_TALLIES = """
SELECT session_id, count(), sum(span_count), min(start_ns), max(end_ns), sum(toInt128(total_tokens)),
    sum(toInt128(cost_nanos)), countIf(error_count > 0),
    argMinIf((start_ns, trace_id, user_id), (start_ns, trace_id), user_id != ''),
    argMinIf((start_ns, trace_id), (start_ns, trace_id), has_input = 1),
    argMaxIf((start_ns, trace_id), (start_ns, trace_id), has_output = 1),
    arraySort(groupArray(latency_ms)),
    groupArrayIf((trace_id, start_ns, tags, metadata), labeled = 1),
    groupArrayIf(user_id, user_id != '')
FROM traces FINAL
WHERE project = {project:String} AND session_id IN {ids:Array(String)}
GROUP BY session_id
"""


def select_tallies(client: Any, project: str, session_ids: list[str]) -> dict[str, Tally]:
    """session id -> tally, recounted from the trace rows, of those of these sessions of the
    project that have any."""
    found: dict[str, Tally] = {}
    for (
        session_id,
        count,
        spans,
        start_ns,
        end_ns,
        tokens,
        nanos,
        errors,
        first_user,
        first_input,
        last_output,
        latencies,
        labels,
        users,
    ) in client.query(_TALLIES, parameters={"project": project, "ids": session_ids}).result_rows:
        found[session_id] = Tally(
            count,
            spans,
            start_ns,
            end_ns,
            int(tokens),
            int(nanos),
            errors,
            tuple(first_user) if first_user[1] else None,
            tuple(first_input) if first_input[1] else None,
            tuple(last_output) if last_output[1] else None,
            list(latencies),
            {trace_id: (start, tags, meta) for trace_id, start, tags, meta in labels},
            dict(Counter(users)),
        )
    return found


def session_row(
    project: str, session_id: str, tally: Tally, texts: list[str | None], version: int
) -> tuple[Any, ...]:
    """The sessions row (SESSIONS order) of a tally; `texts`: its first input and last output."""
    labels = (tally.labels[trace_id] + (trace_id,) for trace_id in tally.labels)
    ordered = sorted(labels, key=lambda label: (label[0], label[3]))
    tags, metadata = merge_labels((json.loads(tags), json.loads(meta)) for _, tags, meta, _ in ordered)
    nanos = saturated(tally.cost_nanos)
    return (
        project,
        session_id,
        tally.first_user[2] if tally.first_user else "",
        tally.trace_count,
        tally.span_count,
        tally.start_ns,
        tally.end_ns,
        saturated(tally.tokens),
        nanos / 1e9,
        nanos,
        tally.errors,
        percentile(tally.latencies, 0.5),
        percentile(tally.latencies, 0.95),
        tally.first_input[1] if tally.first_input else None,
        tally.last_output[1] if tally.last_output else None,
        to_json(tags) if tags else "[]",
        to_json(metadata) if metadata else "{}",
        *texts,
        version,
        0,
    )
