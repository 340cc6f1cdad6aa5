"""Which project a trace belongs to: the one that first stored it, for good (the rule is the
protocol's, see `Store.insert_spans`). Pure: the writer reads the stored owners, then gives each
request, in queue order, its spans as they will be written."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from spanloom.server.store.base import SpanRecord
from spanloom.server.store.trace_rollup import compute_trace, facts_of

FOREIGN_TRACE = "their trace belongs to a project this key may not write to"


@dataclass(slots=True)
class Claimed:
    """A request's spans as they will be written, and how many it may not write."""

    spans: list[SpanRecord]
    rejected: int = 0
    reasons: tuple[str, ...] = ()


def _head_project(spans: Sequence[SpanRecord]) -> str:
    """The project of the head of a new trace's spans (the root, else the earliest orphan)."""
    unique = {span.span_id: span for span in reversed(spans)}  # the first copy of a span wins
    return compute_trace(spans[0].trace_id, map(facts_of, unique.values())).row.project


def claim(spans: Sequence[SpanRecord], scope: frozenset[str] | None, owners: dict[str, str]) -> Claimed:
    """`spans` given their traces' projects. `owners`: trace id -> project of the traces stored
    or claimed by an earlier request; a new trace here is added to it."""
    by_trace: dict[str, list[SpanRecord]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    foreign: set[str] = set()
    for trace_id, members in by_trace.items():
        owner = owners.get(trace_id)
        if owner is None:
            projects = {span.project for span in members}
            owner = owners[trace_id] = projects.pop() if len(projects) == 1 else _head_project(members)
        if scope is not None and owner not in scope:
            foreign.add(trace_id)
    kept = [
        span
        if span.project == owners[span.trace_id]
        else dataclasses.replace(span, project=owners[span.trace_id])
        for span in spans
        if span.trace_id not in foreign
    ]
    rejected = len(spans) - len(kept)
    return Claimed(kept, rejected, (FOREIGN_TRACE,) if rejected else ())
