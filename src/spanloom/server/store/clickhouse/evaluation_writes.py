"""Evaluation results on the write path: finding what each judges (a span, a whole turn, a
session), and writing the results that changed. Their per-session and per-user aggregates are
recounted afterwards (rollups.py), for the owners of what the changed results judge.

End users' feedback may name a turn or a session before its spans arrive: feedback on a turn
waits in `waiting_results` (in the project it was given for) and moves into `evaluations` when
the trace's first spans arrive there (`adopt`); a result on a session is kept under its key and
counts once the session exists."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from spanloom.server.store.clickhouse import schema
from spanloom.server.store.clickhouse.rows import StoredTrace, tombstone
from spanloom.server.store.clickhouse.trace_lookup import find_traces
from spanloom.server.store.evaluation_types import (
    FEEDBACK,
    EvaluationInput,
    EvaluationRejection,
    evaluation_passed,
)
from spanloom.server.store.json_values import to_json

Key = tuple[str, str]


class ResultRow(NamedTuple):
    """An `evaluations` (or `waiting_results`) row before its version."""

    project: str
    trace_id: str
    span_id: str  # '' for feedback on the whole turn
    name: str
    source: str
    result_key: str
    score: float | None
    label: str | None
    passed: int
    time_ns: int
    explanation: str | None
    details: str  # JSON

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        """What a result replaces a stored one by."""
        return self.project, self.trace_id, self.span_id, self.name, self.source, self.result_key


class SessionResultRow(NamedTuple):
    """A `session_results` row before its version."""

    project: str
    session_id: str
    name: str
    source: str
    result_key: str
    score: float | None
    label: str | None
    passed: int
    time_ns: int
    explanation: str | None
    details: str  # JSON

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return self.project, self.session_id, self.name, self.source, self.result_key


RESULT_COLUMNS = ", ".join(ResultRow._fields)
SESSION_RESULT_COLUMNS = ", ".join(SessionResultRow._fields)


def details_text(details: dict[str, object]) -> str:
    return to_json(details) if details else "{}"


def details_of(text: str) -> dict[str, Any]:
    # "{}" for most results: skip the parse.
    return json.loads(text) if text and text != "{}" else {}


@dataclass(slots=True)
class Resolved:
    rows: list[ResultRow] = field(default_factory=list)  # on stored traces
    waiting: list[ResultRow] = field(default_factory=list)  # feedback ahead of its trace
    session_rows: list[SessionResultRow] = field(default_factory=list)
    rejected: list[EvaluationRejection] = field(default_factory=list)
    discarded: int = 0  # accepted in the answer, never written (see resolve)
    traces: dict[str, StoredTrace] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return len(self.rows) + len(self.waiting) + len(self.session_rows) + self.discarded

    def owners(self, rows: Sequence[ResultRow] | None = None) -> tuple[set[Key], set[Key]]:
        """The sessions and users of these rows' traces (all the resolved rows by default)."""
        sessions: set[Key] = set()
        users: set[Key] = set()
        for row in self.rows if rows is None else rows:
            trace = self.traces[row.trace_id].row
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


def select_session_projects(client: Any, session_ids: Collection[str]) -> dict[str, list[str]]:
    """session id -> the projects holding a session of that id."""
    found: dict[str, list[str]] = {}
    if session_ids:
        for session_id, project in client.query(
            "SELECT session_id, project FROM sessions FINAL WHERE session_id IN {ids:Array(String)}"
            " ORDER BY project",
            parameters={"ids": sorted(session_ids)},
        ).result_rows:
            found.setdefault(session_id, []).append(project)
    return found


def resolve(client: Any, items: Sequence[EvaluationInput], projects: frozenset[str] | None) -> Resolved:
    """Rows for the items whose target is stored in one of `projects` (None: any), and why the
    others are not. A target in another project is answered exactly as one that is not stored.
    Feedback may name a turn or a session before its spans arrive: it is kept, in its project."""

    def visible(project: str) -> bool:
        return projects is None or project in projects

    resolved = Resolved()
    now = time.time_ns()
    by_span_id: dict[str, list[str]] = {}
    lone = sorted({item.span_id for item in items if item.span_id and not item.trace_id})
    if lone:
        for span_id, trace_id, project in client.query(
            "SELECT span_id, trace_id, project FROM spans WHERE span_id IN {ids:Array(String)}",
            parameters={"ids": lone},
        ).result_rows:
            if visible(project):
                by_span_id.setdefault(span_id, []).append(trace_id)
    session_holders = select_session_projects(
        client,
        {item.session_id for item in items if item.session_id and not item.trace_id and not item.project},
    )
    keyed: list[tuple[int, EvaluationInput, str, str | None]] = []
    for index, item in enumerate(items):
        if not item.name or (item.score is None and item.label is None):
            resolved.rejected.append(
                EvaluationRejection(index, "a result needs a name and a score or a label")
            )
        elif item.trace_id:
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
        elif item.session_id:
            if item.project is not None:
                holders = [item.project] if visible(item.project) else []
            else:
                holders = [p for p in session_holders.get(item.session_id, []) if visible(p)]
            if len(holders) > 1:
                resolved.rejected.append(
                    EvaluationRejection(index, "several projects have this session_id: give project")
                )
            elif not holders:
                resolved.rejected.append(
                    EvaluationRejection(index, f"no session {item.session_id!r} is stored")
                )
            else:
                resolved.session_rows.append(
                    SessionResultRow(
                        project=holders[0],
                        session_id=item.session_id,
                        name=item.name,
                        source=item.source,
                        result_key=item.key,
                        score=item.score,
                        label=item.label,
                        passed=int(evaluation_passed(item.score, item.label, item.source)),
                        time_ns=item.time_ns or now,
                        explanation=item.explanation,
                        details=details_text(item.details),
                    )
                )
        else:
            resolved.rejected.append(EvaluationRejection(index, "give span_id, trace_id or session_id"))
    stored_traces = find_traces(client, {key[2] for key in keyed})
    found = {trace_id: trace for trace_id, trace in stored_traces.items() if visible(trace.row.project)}
    resolved.traces = found
    wanted = {(trace_id, span_id) for _, _, trace_id, span_id in keyed if span_id and trace_id in found}
    stored = _stored_spans(client, found, wanted) if wanted else set()
    for index, item, trace_id, span_id in keyed:
        trace = found.get(trace_id)
        project = trace.row.project if trace else None
        waiting = False
        if item.source == FEEDBACK and span_id is None:
            # Feedback judges the whole turn, and may come before its spans (then in its project).
            span_id = ""
            if trace is None:
                if item.project is None or not visible(item.project):
                    resolved.rejected.append(
                        EvaluationRejection(index, f"no trace {trace_id!r} is stored: give project")
                    )
                    continue
                if trace_id in stored_traces:
                    # Another project's trace: answered as feedback kept for a trace yet to come
                    # (the answer to an unknown one), and never written.
                    resolved.discarded += 1
                    continue
                project, waiting = item.project, True
        elif span_id is None:
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
        assert project is not None  # the trace's, or given with waiting feedback
        row = ResultRow(
            project=project,
            trace_id=trace_id,
            span_id=span_id,
            name=item.name,
            source=item.source,
            result_key=item.key,
            score=item.score,
            label=item.label,
            passed=int(evaluation_passed(item.score, item.label, item.source)),
            time_ns=item.time_ns or now,
            explanation=item.explanation,
            details=details_text(item.details),
        )
        (resolved.waiting if waiting else resolved.rows).append(row)
    resolved.rejected.sort(key=lambda rejection: rejection.index)
    return resolved


def _changed(latest: dict[Any, Any], stored: dict[Any, Any]) -> list[Any]:
    return [row for key, row in latest.items() if stored.get(key) != row]


def write_rows(client: Any, resolved: Resolved, version: int) -> tuple[set[Key], set[Key]]:
    """Write the resolved rows on stored traces that differ from the stored ones (the same key
    twice: the last wins); returns the sessions and users whose aggregates they change."""
    if not resolved.rows:
        return set(), set()
    latest = {row.key: row for row in resolved.rows}
    projects = sorted({row.project for row in latest.values()})
    trace_ids = sorted({row.trace_id for row in latest.values()})
    stored = {
        row.key: row
        for row in map(
            ResultRow._make,
            client.query(
                f"SELECT {RESULT_COLUMNS} FROM evaluations FINAL"
                " WHERE project IN {projects:Array(String)} AND trace_id IN {ids:Array(String)}",
                parameters={"projects": projects, "ids": trace_ids},
            ).result_rows,
        )
    }
    changed = _changed(latest, stored)
    if not changed:
        return set(), set()
    schema.insert(client, schema.EVALUATIONS, [(*row, version) for row in changed])
    return resolved.owners(changed)


def write_waiting(client: Any, rows: Sequence[ResultRow], version: int) -> set[str]:
    """Keep feedback on turns not stored yet (replacing the same key); returns their traces."""
    if not rows:
        return set()
    latest = {row.key: row for row in rows}
    stored = {
        row.key: row
        for row in map(
            ResultRow._make,
            client.query(
                f"SELECT {RESULT_COLUMNS} FROM waiting_results FINAL WHERE trace_id IN {{ids:Array(String)}}",
                parameters={"ids": sorted({row.trace_id for row in rows})},
            ).result_rows,
        )
    }
    changed = _changed(latest, stored)
    if changed:
        schema.insert(client, schema.WAITING_RESULTS, [(*row, version, 0) for row in changed])
    return {row.trace_id for row in latest.values()}


def select_waiting_trace_ids(client: Any) -> set[str]:
    """Traces with feedback waiting for their spans."""
    return {row[0] for row in client.query("SELECT DISTINCT trace_id FROM waiting_results FINAL").result_rows}


def adopt(client: Any, arrived: dict[str, str], version: int) -> set[str]:
    """Feedback that waited for these traces (trace id -> the project its first spans came in):
    moved into `evaluations` when of the trace's project, dropped when of another (a project's key
    never judges another's trace). Returns the traces that gained results."""
    if not arrived:
        return set()
    rows = [
        ResultRow._make(row)
        for row in client.query(
            f"SELECT {RESULT_COLUMNS} FROM waiting_results FINAL WHERE trace_id IN {{ids:Array(String)}}",
            parameters={"ids": sorted(arrived)},
        ).result_rows
    ]
    if not rows:
        return set()
    kept = [row for row in rows if row.project == arrived[row.trace_id]]
    if kept:
        schema.insert(client, schema.EVALUATIONS, [(*row, version) for row in kept])
    schema.insert(
        client,
        schema.WAITING_RESULTS,
        [
            tombstone(
                schema.WAITING_RESULTS,
                {
                    "trace_id": row.trace_id,
                    "span_id": row.span_id,
                    "name": row.name,
                    "source": row.source,
                    "result_key": row.result_key,
                },
                version,
            )
            for row in rows
        ],
    )
    return {row.trace_id for row in kept}


def write_session_rows(client: Any, rows: Sequence[SessionResultRow], version: int) -> set[Key]:
    """Upsert results on sessions; returns the sessions whose results changed."""
    if not rows:
        return set()
    latest = {row.key: row for row in rows}
    keys = sorted({(row.project, row.session_id) for row in latest.values()})
    stored = {
        row.key: row
        for row in map(
            SessionResultRow._make,
            client.query(
                f"SELECT {SESSION_RESULT_COLUMNS} FROM session_results FINAL"
                " WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}",
                parameters={"keys": keys},
            ).result_rows,
        )
    }
    changed = _changed(latest, stored)
    if changed:
        schema.insert(client, schema.SESSION_RESULTS, [(*row, version, 0) for row in changed])
    return {(row.project, row.session_id) for row in changed}


def select_judged_sessions(client: Any, keys: Iterable[Key]) -> set[Key]:
    """Those of these (project, session id) that have results of their own."""
    keys = sorted(set(keys))
    if not keys:
        return set()
    rows = client.query(
        "SELECT DISTINCT project, session_id FROM session_results FINAL"
        " WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}",
        parameters={"keys": keys},
    ).result_rows
    return {(project, session_id) for project, session_id in rows}


def any_session_results(client: Any) -> bool:
    return bool(client.query("SELECT 1 FROM session_results FINAL LIMIT 1").result_rows)


def select_session_users(client: Any, keys: Iterable[Key]) -> dict[Key, str]:
    """(project, session id) -> the session's user ('' for none), for those stored."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = client.query(
        "SELECT project, session_id, user_id FROM sessions FINAL"
        " WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}",
        parameters={"keys": keys},
    ).result_rows
    return {(project, session_id): user_id for project, session_id, user_id in rows}


def write_results(
    client: Any, items: Sequence[EvaluationInput], projects: frozenset[str] | None, version: int
) -> tuple[set[Key], set[Key]]:
    """Resolve and write (results carried in span events); the owners whose aggregates change."""
    resolved = resolve(client, items, projects)
    if not resolved.rows:
        return set(), set()
    return write_rows(client, resolved, version)
