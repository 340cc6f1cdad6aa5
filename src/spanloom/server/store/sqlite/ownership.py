"""Which project a trace belongs to: the one that first stored it, for good.

A span names its project in its resource, and any sender can name any project: so a trace's
project is fixed when its first spans are stored (the head of those spans decides, as for the
rest of the rollup), and a later span naming another project never re-labels it. Such a span is
stored under the trace's project when its sender may write that project (one app whose services
report different names: an admin key, or no keys at all), and rejected otherwise: a key scoped to
one project cannot move, read or add to another project's trace.

This runs in the writer's transaction, request by request in queue order, so two requests racing
for the same new trace see one winner.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from spanloom.server.store.sqlite import span_rows, trace_writes


@dataclass(slots=True)
class Claimed:
    """A request's spans as they will be written, and those it may not write."""

    spans: span_rows.PreparedSpans
    rejected: int = 0
    reasons: tuple[str, ...] = ()


FOREIGN_TRACE = "their trace belongs to a project this key may not write to"


def claim(
    connection: sqlite3.Connection, requests: Sequence[tuple[span_rows.PreparedSpans, frozenset[str] | None]]
) -> list[Claimed]:
    """Each request's spans given their traces' projects. `requests`: prepared spans (with their
    per-trace rollups) and the projects their sender may write (None: any)."""
    trace_ids = {trace_id for spans, _ in requests for trace_id in spans.trace_projects}
    owners = trace_writes.select_trace_projects(connection, trace_ids) if trace_ids else {}
    return [_claim(spans, scope, owners) for spans, scope in requests]


def _head_project(spans: span_rows.PreparedSpans, trace_id: str) -> str:
    """The project of the head of the trace's spans in `spans` (from `span_rows.prepare`)."""
    rollup = spans.rollups[trace_id]
    assert rollup is not None  # prepare computes one for every trace of its spans
    return rollup.row.project


def _claim(spans: span_rows.PreparedSpans, scope: frozenset[str] | None, owners: dict[str, str]) -> Claimed:
    foreign: set[str] = set()  # traces of a project the sender may not write
    restamp: dict[str, str] = {}  # trace -> its project, for traces with spans naming another
    for trace_id, project in spans.trace_projects.items():
        owner = owners.get(trace_id)
        if owner is None:
            # New here: the head of this request's spans decides, and later requests see it.
            owner = owners[trace_id] = project if project is not None else _head_project(spans, trace_id)
        if scope is not None and owner not in scope:
            foreign.add(trace_id)
        elif project != owner:  # None: this request's spans of the trace name several projects
            restamp[trace_id] = owner
    if not foreign and not restamp:
        return Claimed(spans)
    kept = [
        dataclasses.replace(span, project=restamp[span.trace_id])
        if span.trace_id in restamp and span.project != restamp[span.trace_id]
        else span
        for span in spans
        if span.trace_id not in foreign
    ]
    rejected = len(spans) - len(kept)
    # Rare: rows and rollups built again, here in the writer, for the spans as they now stand.
    return Claimed(span_rows.prepare(kept), rejected, (FOREIGN_TRACE,) if rejected else ())
