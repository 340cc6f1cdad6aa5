"""Copying a whole store into another (`spanloom migrate FROM TO`), through the protocol only:
any backend to any backend.

Spans go over in pages of `list_spans` (its stated order), each page inserted and committed
before the next is read; the destination computes every rollup itself, as from any sender.
Results carried in span events come back from the spans; the others (sent through the API or
written by server evaluators, end users' feedback) are read from each session's turns and the
session itself, and from each trace outside a session, and inserted under their own source and
key. An ended session is ended in the copy as of its last turn, and a session its evaluators have
judged since its last turn is marked judged there too (so they do not judge it again). Feedback
still waiting for its trace's spans is not copied. At the end the span, trace, session and user
counts of every project are compared.

Safe to run again over a partial copy: the destination leaves out every span and result it
holds already.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace

from spanloom.server.store.base import ListQuery, ProjectSummary, Store
from spanloom.server.store.evaluation_types import EvaluationInput, EvaluationRecord

PAGE_SPANS = 2000
PAGE_ROWS = 500
MARKS_IN_FLIGHT = 8
WAIT_SECONDS = 600


@dataclass(frozen=True)
class ProjectCheck:
    project: str
    source: tuple[int, int, int, int]  # spans, traces, sessions, users
    copied: tuple[int, int, int, int]

    @property
    def matches(self) -> bool:
        return self.source == self.copied


def _figures(project: ProjectSummary | None) -> tuple[int, int, int, int]:
    if project is None:
        return (0, 0, 0, 0)
    return (project.span_count, project.trace_count, project.session_count, project.user_count)


def copy_spans(source: Store, destination: Store, advance: Callable[[int], None]) -> int:
    """Every span of `source` into `destination`; `advance` hears each page's span count."""
    copied = 0
    query = ListQuery(limit=PAGE_SPANS)
    while True:
        page = source.list_spans(query)
        if page.items:
            destination.insert_spans(page.items).result(timeout=WAIT_SECONDS)
            copied += len(page.items)
            advance(len(page.items))
        if page.next_cursor is None:
            return copied
        query = replace(query, cursor=page.next_cursor)


def _every(list_page: Callable[[ListQuery], object], query: ListQuery) -> Iterator[object]:
    while True:
        page = list_page(query)
        yield from page.items  # type: ignore[attr-defined]
        if page.next_cursor is None:  # type: ignore[attr-defined]
            return
        query = replace(query, cursor=page.next_cursor)  # type: ignore[attr-defined]


def _as_input(result: EvaluationRecord, project: str) -> EvaluationInput:
    """The input that stores `result` again: on its span, its whole trace (span id ''), or its
    session (trace id '')."""
    return EvaluationInput(
        name=result.name,
        source=result.source,  # type: ignore[arg-type]
        span_id=result.span_id or None,
        trace_id=result.trace_id or None,
        session_id=result.session_id if not result.trace_id else None,
        project=project,
        score=result.score,
        label=result.label,
        explanation=result.explanation,
        time_ns=result.time_ns,
        key=result.key,
        details=dict(result.details),
    )


def copy_evaluations(source: Store, destination: Store) -> int:
    """The results of `source` not carried in span events, and its sessions' marks; how many
    results were copied."""
    copy_session_marks(source, destination)
    if not source.list_evaluation_names():
        return 0
    copied = 0
    pending: list[EvaluationInput] = []

    def flush() -> None:
        nonlocal copied
        if pending:
            destination.insert_evaluations(list(pending)).result(timeout=WAIT_SECONDS)
            copied += len(pending)
            pending.clear()

    for session in _every(source.list_sessions, ListQuery(limit=PAGE_ROWS, order="asc")):
        detail = source.get_session(session.project, session.session_id)  # type: ignore[attr-defined]
        project = session.project  # type: ignore[attr-defined]
        for turn in detail.turns if detail else ():
            pending.extend(_as_input(r, project) for r in turn.evaluations if r.source != "sdk")
        pending.extend(_as_input(result, project) for result in (detail.results if detail else ()))
        if len(pending) >= PAGE_ROWS:
            flush()
    for trace in _every(source.list_traces, ListQuery(limit=PAGE_ROWS, order="asc")):
        if trace.session_id is None:  # type: ignore[attr-defined]
            outline = source.get_trace_outline(trace.trace_id)  # type: ignore[attr-defined]
            if outline is not None:
                project = trace.project  # type: ignore[attr-defined]
                pending.extend(
                    _as_input(r, project) for r in outline.summary.evaluations if r.source != "sdk"
                )
            if len(pending) >= PAGE_ROWS:
                flush()
    flush()
    return copied


def copy_session_marks(source: Store, destination: Store) -> None:
    """Ended sessions end in the copy as of their last turn; sessions judged since their last turn
    are marked judged as of it (those the source has not judged are due in either store)."""
    sessions = list(_every(source.list_sessions, ListQuery(limit=PAGE_ROWS, order="asc")))
    due = {
        (project, session_id)
        for project, session_id, _ in source.sessions_to_judge(2**63 - 1, limit=len(sessions) + 1)
    }
    marks: list[Future[None]] = []
    for session in sessions:
        key = (session.project, session.session_id)  # type: ignore[attr-defined]
        end_ns = session.end_time_ns  # type: ignore[attr-defined]
        if session.ended:  # type: ignore[attr-defined]
            marks.append(destination.end_session(*key, end_ns))
        if key not in due:
            marks.append(destination.mark_judged(*key, end_ns))
        if len(marks) >= MARKS_IN_FLIGHT:  # the writer's queue is bounded
            for mark in marks:
                mark.result(timeout=WAIT_SECONDS)
            marks.clear()
    for mark in marks:
        mark.result(timeout=WAIT_SECONDS)


def check_projects(source: Store, destination: Store) -> list[ProjectCheck]:
    """Per project: spans, traces, sessions and users in both stores."""
    before = {project.name: project for project in source.list_projects()}
    after = {project.name: project for project in destination.list_projects()}
    return [
        ProjectCheck(name, _figures(before.get(name)), _figures(after.get(name)))
        for name in sorted(before.keys() | after.keys())
    ]
