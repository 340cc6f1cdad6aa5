"""The pages. Each one is a single query-layer call plus rendering (and the project list for the
navigation), with list parameters validated by the same models as the JSON API's.

A session or user id is unique only inside its project: their pages take ``project=``; without
it, an id held by one project the caller may read opens there, and one held by several answers a
page (409) that links the id in each.

Handlers are plain functions: FastAPI runs them in its thread pool, where the store gives each
thread its own read connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from spanloom.server.auth.scope import (
    AmbiguousIdError,
    ProjectNotVisibleError,
    can_see,
    pick_project,
    restrict_query,
)
from spanloom.server.list_params import (
    BadParameterError,
    SessionListParams,
    TraceListParams,
    UserListParams,
    validate_list,
    validate_turns,
)
from spanloom.server.store.base import SESSION_SORT_KEYS, ListQuery, Page, Store, accepts_eval_sort
from spanloom.server.store.evaluation_types import EVAL_SORT_PREFIX, FEEDBACK
from spanloom.server.web.chrome import ambiguous, bad_request, chrome, not_found
from spanloom.server.web.feedback_view import feedback_of
from spanloom.server.web.forms import RANGE_LABELS, SPAN_KINDS, STATUSES, filter_form, shared_params
from spanloom.server.web.overview import trend_strip
from spanloom.server.web.render import STATIC_FILES, Links, page_path, render, static_response
from spanloom.server.web.replay_view import replay_context
from spanloom.server.web.session_view import (
    first_judged_failure,
    session_results,
    turn_chart,
    turn_views,
    where_it_breaks,
)
from spanloom.server.web.trace_view import page_offset, trace_view

router = APIRouter(include_in_schema=False)

SESSION_FILTERS = ("user_id", "q", "has_error", "status", "has_negative_feedback")
USER_FILTERS = ("q", "has_error", "has_negative_feedback")
TRACE_FILTERS = (
    "session_id",
    "user_id",
    "span_kind",
    "model",
    "status",
    "q",
    "has_error",
    "has_negative_feedback",
)
FEEDBACK_SORT = EVAL_SORT_PREFIX + FEEDBACK
# Column headings of each list's sort keys.
SORT_LABELS = {
    "start_time": "Start",
    "last_activity": "Last activity",
    "turns": "Turns",
    "tokens": "Tokens",
    "cost": "Cost",
    "latency": "Latency",
    "errors": "Errors",
    "last_seen": "Last seen",
    "first_seen": "First seen",
    "sessions": "Sessions",
    "traces": "Traces",
    "spans": "Spans",
    "error_rate": "Error rate",
    FEEDBACK_SORT: "Feedback (thumbs-up share)",
}


def _store(request: Request) -> Store:
    return request.app.state.store


def _list_page(
    request: Request,
    *,
    section: str,
    template: str,
    params: type[SessionListParams | UserListParams | TraceListParams],
    filter_names: Sequence[str],
    fetch: Callable[[Store, ListQuery], Page[Any]],
    trends: bool = False,
) -> Response:
    store = _store(request)
    try:
        query = restrict_query(request, validate_list(params, shared_params(request.query_params)))
        query.idle_before_ns = request.app.state.settings.idle_before_ns()
        form = filter_form(request.query_params, query, filter_names)
    except BadParameterError as error:
        return bad_request(request, store, section, error)
    except ProjectNotVisibleError as error:
        return not_found(request, store, section, "project", error.args[0])
    page = fetch(store, query)
    context = {
        **chrome(request, store, section, page_path(request)),
        "page": page,
        "query": query,
        "form": form,
        "sort_keys": _sort_keys(params.SORT_KEYS),
        "sort_labels": SORT_LABELS,
        "idle_before_ns": query.idle_before_ns,
        "range_labels": RANGE_LABELS,
        "span_kinds": SPAN_KINDS,
        "statuses": STATUSES,
        "trends": trend_strip(request, store, query) if trends else None,
    }
    return render(request, template, context)


def _sort_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The sort choices of a list's form: sessions and users also sort by their feedback."""
    return (*keys, FEEDBACK_SORT) if accepts_eval_sort(keys) else keys


def project_of(
    request: Request, store: Store, section: str, kind: str, identifier: str, holders: Callable[[], list[str]]
) -> str | Response:
    """The project whose `kind` `identifier` the page shows, or the page answering instead (not
    found, or the projects to choose from)."""
    named = (request.query_params.get("project") or "").strip() or None
    try:
        project = pick_project(request, named, holders)
    except AmbiguousIdError as error:
        return ambiguous(request, store, section, kind, identifier, error.projects)
    return project if project is not None else not_found(request, store, section, kind, identifier)


@router.get("/", name="web_index")
def index() -> RedirectResponse:
    return RedirectResponse("/sessions", status_code=302)


@router.get("/sessions", name="web_sessions")
def sessions_page(request: Request) -> Response:
    return _list_page(
        request,
        section="sessions",
        template="sessions.html",
        params=SessionListParams,
        filter_names=SESSION_FILTERS,
        fetch=lambda store, query: store.list_sessions(query),
        trends=True,
    )


@router.get("/sessions/{session_id:path}", name="web_session")
def session_page(request: Request, session_id: str) -> Response:
    store = _store(request)
    if not session_id:
        return RedirectResponse(Links(request).list("web_sessions"), status_code=302)
    project = project_of(
        request, store, "sessions", "session", session_id, lambda: store.find_session_projects(session_id)
    )
    if isinstance(project, Response):
        return project
    try:
        page = validate_turns(request.query_params)
    except BadParameterError as error:
        return bad_request(request, store, "sessions", error)
    detail = store.get_session(project, session_id, page.limit, page.cursor)
    if detail is None:
        return not_found(request, store, "sessions", "session", session_id)
    links = Links(request)
    context = {
        **chrome(request, store, "sessions", links.path("web_sessions")),
        "detail": detail,
        "session": detail.summary,
        "status": detail.summary.status(request.app.state.settings.idle_before_ns()),
        "results": session_results(detail, links.trace),
        "session_feedback": feedback_of(detail.results),
        "turns": turn_views(detail),
        "chart": turn_chart(detail.turns, detail.first_turn_index + 1),
        "breaks": where_it_breaks(detail),
        **replay_context(store, detail.summary),
        "judged_break": first_judged_failure(detail),
    }
    return render(request, "session.html", context)


@router.get("/users", name="web_users")
def users_page(request: Request) -> Response:
    return _list_page(
        request,
        section="users",
        template="users.html",
        params=UserListParams,
        filter_names=USER_FILTERS,
        fetch=lambda store, query: store.list_users(query),
        trends=True,
    )


@router.get("/users/{user_id:path}", name="web_user")
def user_page(request: Request, user_id: str) -> Response:
    store = _store(request)
    if not user_id:
        return RedirectResponse(Links(request).list("web_users"), status_code=302)
    project = project_of(request, store, "users", "user", user_id, lambda: store.find_user_projects(user_id))
    if isinstance(project, Response):
        return project
    try:
        sessions = validate_list(SessionListParams, shared_params(request.query_params), {"project": project})
    except BadParameterError as error:
        return bad_request(request, store, "users", error)
    sessions.idle_before_ns = request.app.state.settings.idle_before_ns()
    detail = store.get_user(project, user_id, sessions)
    if detail is None:
        return not_found(request, store, "users", "user", user_id)
    context = {
        **chrome(request, store, "users", Links(request).path("web_users")),
        "user": detail.summary,
        "page": detail.sessions,
        "query": sessions,
        "sort_keys": _sort_keys(SESSION_SORT_KEYS),
        "sort_labels": SORT_LABELS,
        "idle_before_ns": sessions.idle_before_ns,
    }
    return render(request, "user.html", context)


@router.get("/traces", name="web_traces")
def traces_page(request: Request) -> Response:
    return _list_page(
        request,
        section="traces",
        template="traces.html",
        params=TraceListParams,
        filter_names=TRACE_FILTERS,
        fetch=lambda store, query: store.list_traces(query),
    )


@router.get("/traces/{trace_id:path}", name="web_trace")
def trace_page(request: Request, trace_id: str) -> Response:
    store = _store(request)
    if not trace_id:
        return RedirectResponse(Links(request).list("web_traces"), status_code=302)
    # The outline of every span orders the tree; only the page shown is read whole (a trace may
    # hold 100,000 spans, most of whose bytes are texts and attributes).
    detail = store.get_trace_outline(trace_id.lower())
    if detail is None or not can_see(request, detail.summary.project):
        return not_found(request, store, "traces", "trace", trace_id)
    try:
        offset = page_offset(request.query_params.get("offset"))
    except BadParameterError as error:
        return bad_request(request, store, "traces", error)
    page_size = request.app.state.settings.trace_page_spans
    context = {
        **chrome(request, store, "traces", Links(request).path("web_traces")),
        "trace": detail.summary,
        "view": trace_view(
            detail,
            offset=offset,
            limit=page_size,
            load=lambda span_ids: store.get_spans(detail.summary.trace_id, span_ids),
            selected_id=request.query_params.get("span"),
        ),
    }
    return render(request, "trace.html", context)


@router.get("/static/{name}", name="web_static")
def static_file(name: str) -> Response:
    if name not in STATIC_FILES:
        return Response("not found", status_code=404, media_type="text/plain")
    return static_response(name)
