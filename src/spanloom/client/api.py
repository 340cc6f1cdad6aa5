"""The client's methods, written once for both clients: each builds the requests of one call and
reads their answers, and leaves the sending to the sync or async client (`_call` drives a
generator of requests; `_list` wraps a ListSpec). A detail that spans several pages (a session's
turns, a trace's spans) is one generator asking for the next page until the cursor runs out."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from spanloom.client.errors import SpanloomClientError
from spanloom.client.pages import DEFAULT_PAGE_SIZE, ListSpec
from spanloom.client.records import (
    EvaluationGroup,
    EvaluationResult,
    Project,
    Session,
    SessionDetail,
    Span,
    Trace,
    TraceDetail,
    User,
    from_json,
)
from spanloom.client.transport import Request, evaluation_items, query

T = TypeVar("T")
Steps = Generator[Request, Any, T]
When = datetime | str | float | None  # a datetime (naive means UTC), ISO 8601 or Unix seconds
TURNS_PER_PAGE = 500  # the API's largest
SPANS_PER_PAGE = 10_000  # the API's largest


def _one(request: Request) -> Steps[Any]:
    return (yield request)


def _session_steps(session_id: str, project: str | None) -> Steps[SessionDetail]:
    path = f"/api/sessions/{quote(session_id, safe='')}"
    first = yield Request("GET", path, query(project=project, limit=TURNS_PER_PAGE))
    turns, cursor = list(first["turns"]), first.get("next_cursor")
    while cursor:
        page = yield Request(
            "GET", path, query(project=first["project"], limit=TURNS_PER_PAGE, cursor=cursor)
        )
        turns.extend(page["turns"])
        cursor = page.get("next_cursor")
    return from_json(SessionDetail, {**first, "turns": turns})


def _trace_steps(trace_id: str, project: str | None) -> Steps[TraceDetail]:
    path = f"/api/traces/{quote(trace_id, safe='')}"
    first = yield Request("GET", path, query(limit=SPANS_PER_PAGE))
    if project is not None and first.get("project") != project:
        # The route takes no project: a trace of another one answers as a missing trace does.
        raise SpanloomClientError(f"GET {path} answered 404: no trace {trace_id!r} in {project!r}", 404)
    spans, cursor = list(first["spans"]), first.get("next_cursor")
    while cursor:
        page = yield Request("GET", path, query(limit=SPANS_PER_PAGE, cursor=cursor))
        spans.extend(page["spans"])
        cursor = page.get("next_cursor")
    spans.sort(key=lambda span: span["start_time"] or "")
    return from_json(TraceDetail, {**first, "spans": spans})


class Methods(Generic[T]):
    """The read and write calls of the API. Subclasses define `_call` (drive a generator of
    requests) and `_list` (a list result for a ListSpec)."""

    def _call(self, steps: Steps[Any]) -> Any:
        raise NotImplementedError

    def _list(self, spec: ListSpec[Any]) -> Any:
        raise NotImplementedError

    def projects(self) -> Any:
        """Every project the key may read, with its counts."""
        return self._list(ListSpec("/api/projects", (), Project, paged=False))

    def sessions(
        self,
        project: str | None = None,
        *,
        user_id: str | None = None,
        start: When = None,
        end: When = None,
        has_error: bool | None = None,
        tag: str | Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        q: str | None = None,
        status: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Any:
        """Sessions (conversations), filtered and sorted as on the dashboard. `sort`: start_time
        (the default), last_activity, turns, tokens, cost, latency, errors, feedback or eval:NAME."""
        params = query(
            project=project,
            user_id=user_id,
            start=start,
            end=end,
            has_error=has_error,
            tag=[tag] if isinstance(tag, str) else tag,
            metadata=metadata,
            q=q,
            status=status,
            sort=sort,
            order=order,
        )
        return self._list(ListSpec("/api/sessions", params, Session, limit, page_size))

    def session(self, session_id: str, project: str | None = None) -> Any:
        """One session with all its turns in time order (`project` is needed when the id is in
        several projects)."""
        return self._call(_session_steps(session_id, project))

    def users(
        self,
        project: str | None = None,
        *,
        start: When = None,
        end: When = None,
        has_error: bool | None = None,
        q: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Any:
        params = query(
            project=project, start=start, end=end, has_error=has_error, q=q, sort=sort, order=order
        )
        return self._list(ListSpec("/api/users", params, User, limit, page_size))

    def user(self, user_id: str, project: str | None = None) -> Any:
        """One user's aggregates; their sessions: ``sessions(project, user_id=...)``."""
        request = Request("GET", f"/api/users/{quote(user_id, safe='')}", query(project=project, limit=1))
        return self._call(_read(request, User))

    def traces(
        self,
        project: str | None = None,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        start: When = None,
        end: When = None,
        has_error: bool | None = None,
        tag: str | Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        span_kind: str | None = None,
        model: str | None = None,
        status: str | None = None,
        q: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Any:
        params = query(
            project=project,
            user_id=user_id,
            session_id=session_id,
            start=start,
            end=end,
            has_error=has_error,
            tag=[tag] if isinstance(tag, str) else tag,
            metadata=metadata,
            span_kind=span_kind,
            model=model,
            status=status,
            q=q,
            sort=sort,
            order=order,
        )
        return self._list(ListSpec("/api/traces", params, Trace, limit, page_size))

    def trace(self, trace_id: str, project: str | None = None) -> Any:
        """One trace with all its spans, in start order."""
        return self._call(_trace_steps(trace_id, project))

    def spans(
        self,
        project: str | None = None,
        *,
        span_kind: str | None = None,
        start: When = None,
        end: When = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Any:
        """Spans by (project, start time), oldest first; `start`/`end` bound their start."""
        params = query(project=project, span_kind=span_kind, start=start, end=end)
        return self._list(ListSpec("/api/spans", params, Span, limit, page_size))

    def evaluations(
        self,
        project: str | None = None,
        *,
        name: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        source: str | None = None,
        start: When = None,
        end: When = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Any:
        """Evaluation results one row each (EvaluationResult): on spans and whole turns, then on
        whole sessions (`level` says which), with their trace, session and user. `session_id`
        keeps the results on that session's turns and on the session itself; `source` is sdk,
        api, server or feedback; `start`/`end` bound when a result was recorded. A result sent
        again replaces the earlier one, so each shows once. Aggregates: `evaluation_summary()`."""
        params = query(
            project=project,
            name=name,
            session_id=session_id,
            trace_id=trace_id,
            span_id=span_id,
            source=source,
            start=start,
            end=end,
        )
        return self._list(ListSpec("/api/evaluations", params, EvaluationResult, limit, page_size))

    def log_evaluations(self, results: Iterable[Mapping[str, Any]]) -> Any:
        """Send evaluation results; returns ``{"accepted": n, "rejected": [{"index", "reason"}]}``.

        Results naming spans the server does not have come back in ``rejected`` (status 207, or
        422 when none was stored); anything else that is not a 2xx raises SpanloomClientError.
        """
        return self._call(_accepted(evaluation_items(results)))

    def evaluation_summary(
        self,
        group_by: str = "session",
        *,
        project: str | None = None,
        name: str | None = None,
        limit: int | None = None,
    ) -> Any:
        """Evaluation aggregates (EvaluationGroup) per session, user or project and evaluation
        name: count, mean score, pass rate, the worst result; worst mean score first, at most
        1,000 rows. The results themselves: `evaluations()`."""
        params = query(group_by=group_by, name=name, project=project)
        spec = ListSpec(
            "/api/evaluations/summary",
            params,
            EvaluationGroup,
            limit,
            min(limit or 1000, 1000),
            paged=False,
            extra=(("group_by", group_by),),
        )
        return self._list(spec)


def _read(request: Request, record: type[T]) -> Steps[T]:
    return from_json(record, (yield request))


def _accepted(request: Request) -> Steps[dict[str, Any]]:
    body = yield request
    if isinstance(body, dict) and "accepted" in body:
        return body
    raise SpanloomClientError(f"POST /api/evaluations answered without a count: {body!s:.200}", 200, body)
