"""Evaluation results on the write path: finding the span each judges, and writing the results
that changed. Their per-session and per-user aggregates are recounted afterwards (rollups.py),
for the owners of the traces whose results changed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spanloom.server.store.clickhouse import schema
from spanloom.server.store.clickhouse.rows import StoredTrace
from spanloom.server.store.clickhouse.trace_lookup import find_traces
from spanloom.server.store.evaluation_types import EvaluationInput, EvaluationRejection, evaluation_passed

Key = tuple[str, str]
# (project, trace_id, span_id, name, source, score, label, passed, time_ns, explanation): the
# EVALUATIONS columns before `version`.
ResultRow = tuple[Any, ...]
_COLUMNS = schema.EVALUATIONS.column_names


@dataclass(slots=True)
class Resolved:
    rows: list[ResultRow] = field(default_factory=list)
    rejected: list[EvaluationRejection] = field(default_factory=list)
    traces: dict[str, StoredTrace] = field(default_factory=dict)

    def owners(self, rows: Sequence[ResultRow] | None = None) -> tuple[set[Key], set[Key]]:
        """The sessions and users of these rows' traces (all the resolved rows by default)."""
        sessions: set[Key] = set()
        users: set[Key] = set()
        for row in self.rows if rows is None else rows:
            trace = self.traces[row[1]].row
            if trace.session_id:
                sessions.add((trace.project, trace.session_id))
            if trace.user_id:
                users.add((trace.project, trace.user_id))
        return sessions, users


def _stored_spans(
    client: Any, traces: dict[str, StoredTrace], wanted: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Those of these (trace id, span id) that are stored: one key range per project."""
    found: set[tuple[str, str]] = set()
    by_project: dict[str, list[StoredTrace]] = {}
    for trace_id in {trace_id for trace_id, _ in wanted}:
        by_project.setdefault(traces[trace_id].row.project, []).append(traces[trace_id])
    for project, members in by_project.items():
        ids = {trace.row.trace_id for trace in members}
        rows = client.query(
            "SELECT trace_id, span_id FROM spans WHERE project = {project:String} AND start_ns >= {low:Int64}"
            " AND start_ns <= {high:Int64} AND trace_id IN {traces:Array(String)}"
            " AND span_id IN {spans:Array(String)}",
            parameters={
                "project": project,
                "low": min(trace.row.start_ns for trace in members),
                "high": max(trace.row.end_ns for trace in members),
                "traces": sorted(ids),
                "spans": sorted({span_id for trace_id, span_id in wanted if trace_id in ids}),
            },
        ).result_rows
        found.update((trace_id, span_id) for trace_id, span_id in rows if (trace_id, span_id) in wanted)
    return found


def resolve(client: Any, items: Sequence[EvaluationInput], projects: frozenset[str] | None) -> Resolved:
    """Rows for the items whose span is stored in one of `projects` (None: any), and why the
    others are not. A span in another project is answered exactly as one that is not stored."""

    def visible(project: str) -> bool:
        return projects is None or project in projects

    resolved = Resolved()
    by_span_id: dict[str, list[str]] = {}
    lone = sorted({item.span_id for item in items if item.span_id and not item.trace_id})
    if lone:
        for span_id, trace_id, project in client.query(
            "SELECT span_id, trace_id, project FROM spans WHERE span_id IN {ids:Array(String)}",
            parameters={"ids": lone},
        ).result_rows:
            if visible(project):
                by_span_id.setdefault(span_id, []).append(trace_id)
    keyed: list[tuple[int, EvaluationInput, str, str | None]] = []
    for index, item in enumerate(items):
        if item.trace_id:
            keyed.append((index, item, item.trace_id, item.span_id))
        elif item.span_id:
            traces = by_span_id.get(item.span_id, [])
            if len(traces) == 1:
                keyed.append((index, item, traces[0], item.span_id))
            elif traces:
                resolved.rejected.append(
                    EvaluationRejection(index, "several traces have this span_id: give trace_id")
                )
            else:
                resolved.rejected.append(EvaluationRejection(index, f"no span {item.span_id!r} is stored"))
        else:
            resolved.rejected.append(EvaluationRejection(index, "give span_id or trace_id"))
    found = {
        trace_id: trace
        for trace_id, trace in find_traces(client, {key[2] for key in keyed}).items()
        if visible(trace.row.project)
    }
    resolved.traces = found
    wanted = {(trace_id, span_id) for _, _, trace_id, span_id in keyed if span_id and trace_id in found}
    stored = _stored_spans(client, found, wanted) if wanted else set()
    now = time.time_ns()
    for index, item, trace_id, span_id in keyed:
        trace = found.get(trace_id)
        if span_id is None:
            root = trace.row.root_span_id if trace else None
            if root is None:
                reason = "its root span has not arrived" if trace else f"no trace {trace_id!r} is stored"
                resolved.rejected.append(EvaluationRejection(index, reason))
                continue
            span_id = root
        elif trace is None or (trace_id, span_id) not in stored:
            resolved.rejected.append(
                EvaluationRejection(index, f"no span {span_id!r} in trace {trace_id!r} is stored")
            )
            continue
        if not item.name or (item.score is None and item.label is None):
            resolved.rejected.append(
                EvaluationRejection(index, "a result needs a name and a score or a label")
            )
            continue
        assert trace is not None
        resolved.rows.append(
            (
                trace.row.project,
                trace_id,
                span_id,
                item.name,
                item.source,
                item.score,
                item.label,
                int(evaluation_passed(item.score, item.label)),
                item.time_ns or now,
                item.explanation,
            )
        )
    resolved.rejected.sort(key=lambda rejection: rejection.index)
    return resolved


def write_rows(client: Any, resolved: Resolved, version: int) -> tuple[set[Key], set[Key]]:
    """Write the resolved rows that differ from the stored ones (the same key twice: the last
    wins); returns the sessions and users whose aggregates they change."""
    latest = {row[:5]: row for row in resolved.rows}
    projects = sorted({row[0] for row in latest.values()})
    trace_ids = sorted({row[1] for row in latest.values()})
    stored = {
        tuple(row[:5]): tuple(row)
        for row in client.query(
            f"SELECT {', '.join(_COLUMNS[:-1])} FROM evaluations FINAL"
            " WHERE project IN {projects:Array(String)} AND trace_id IN {ids:Array(String)}",
            parameters={"projects": projects, "ids": trace_ids},
        ).result_rows
    }
    changed = [row for key, row in latest.items() if stored.get(key) != row]
    if not changed:
        return set(), set()
    schema.insert(client, schema.EVALUATIONS, [(*row, version) for row in changed])
    return resolved.owners(changed)


def write_results(
    client: Any, items: Sequence[EvaluationInput], projects: frozenset[str] | None, version: int
) -> tuple[set[Key], set[Key]]:
    """Resolve and write (results carried in span events); the owners whose aggregates change."""
    resolved = resolve(client, items, projects)
    if not resolved.rows:
        return set(), set()
    return write_rows(client, resolved, version)
