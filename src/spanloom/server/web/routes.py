"""The pages. Each one is a single query-layer call plus rendering (and the project list for the
navigation), with list parameters parsed exactly as the JSON API parses them.

Handlers are plain functions: FastAPI runs them in its thread pool, where the store gives each
thread its own read connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from spanloom.server.auth.scope import (
    ProjectNotVisibleError,
    allowed_projects,
    can_see,
    restrict_query,
)
from spanloom.server.query_params import BadParameterError, parse_list_query
from spanloom.server.store.base import (
    SESSION_SORT_KEYS,
    TRACE_SORT_KEYS,
    USER_SORT_KEYS,
    ListQuery,
    Page,
    Store,
)
from spanloom.server.web.forms import RANGE_LABELS, SPAN_KINDS, STATUSES, filter_form, shared_params
from spanloom.server.web.projects import cached_projects
from spanloom.server.web.render import STATIC_FILES, Links, render, static_response
from spanloom.server.web.session_view import turn_chart, turn_views
from spanloom.server.web.trace_view import page_offset, trace_view

router = APIRouter(include_in_schema=False)

SESSION_FILTERS = ("user_id", "q", "has_error")
USER_FILTERS = ("q", "has_error")
TRACE_FILTERS = ("session_id", "user_id", "span_kind", "model", "status", "q", "has_error")
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
}


def _store(request: Request) -> Store:
    return request.app.state.store


def _chrome(request: Request, store: Store, section: str, picker_action: str) -> dict[str, Any]:
    """What the common navigation needs: the projects the caller may read (cached, see projects.py),
    where the picker goes, and the logout form when the caller logged in with the form."""
    allowed = allowed_projects(request)
    login_session = getattr(request.state, "login_session", None)
    return {
        "projects": [project for project in cached_projects(store) if can_see(request, project.name)],
        "all_projects_allowed": allowed is None,
        "current_project": Links(request).project or (min(allowed) if allowed else ""),
        "section": section,
        "picker_action": picker_action,
        "logout_csrf": login_session.csrf_token if login_session is not None else None,
    }


def _bad_request(request: Request, store: Store, section: str, error: BadParameterError) -> Response:
    context = {**_chrome(request, store, section, request.url.path), "error": error}
    return render(request, "bad_request.html", context, status_code=400)


def _not_found(request: Request, store: Store, section: str, kind: str, identifier: str) -> Response:
    list_path = Links(request).path(f"web_{section}")
    context = {**_chrome(request, store, section, list_path), "kind": kind, "identifier": identifier}
    return render(request, "not_found.html", context, status_code=404)


def _list_page(
    request: Request,
    *,
    section: str,
    template: str,
    sort_keys: Sequence[str],
    filter_names: Sequence[str],
    fetch: Callable[[Store, ListQuery], Page[Any]],
) -> Response:
    store = _store(request)
    try:
        query = restrict_query(request, parse_list_query(shared_params(request.query_params), sort_keys))
        form = filter_form(request.query_params, query, filter_names)
    except BadParameterError as error:
        return _bad_request(request, store, section, error)
    except ProjectNotVisibleError as error:
        return _not_found(request, store, section, "project", error.args[0])
    page = fetch(store, query)
    context = {
        **_chrome(request, store, section, request.url.path),
        "page": page,
        "query": query,
        "form": form,
        "sort_keys": sort_keys,
        "sort_labels": SORT_LABELS,
        "range_labels": RANGE_LABELS,
        "span_kinds": SPAN_KINDS,
        "statuses": STATUSES,
    }
    return render(request, template, context)


@router.get("/", name="web_index")
def index() -> RedirectResponse:
    return RedirectResponse("/sessions", status_code=302)


@router.get("/sessions", name="web_sessions")
def sessions_page(request: Request) -> Response:
    return _list_page(
        request,
        section="sessions",
        template="sessions.html",
        sort_keys=SESSION_SORT_KEYS,
        filter_names=SESSION_FILTERS,
        fetch=lambda store, query: store.list_sessions(query),
    )


@router.get("/sessions/{session_id:path}", name="web_session")
def session_page(request: Request, session_id: str) -> Response:
    store = _store(request)
    if not session_id:
        return RedirectResponse(Links(request).list("web_sessions"), status_code=302)
    detail = store.get_session(session_id)
    if detail is None or not can_see(request, detail.summary.project):
        return _not_found(request, store, "sessions", "session", session_id)
    context = {
        **_chrome(request, store, "sessions", Links(request).path("web_sessions")),
        "detail": detail,
        "session": detail.summary,
        "turns": turn_views(detail),
        "chart": turn_chart(detail.turns),
        "first_failing": detail.first_failing_turn,
    }
    return render(request, "session.html", context)


@router.get("/users", name="web_users")
def users_page(request: Request) -> Response:
    return _list_page(
        request,
        section="users",
        template="users.html",
        sort_keys=USER_SORT_KEYS,
        filter_names=USER_FILTERS,
        fetch=lambda store, query: store.list_users(query),
    )


@router.get("/users/{user_id:path}", name="web_user")
def user_page(request: Request, user_id: str) -> Response:
    store = _store(request)
    if not user_id:
        return RedirectResponse(Links(request).list("web_users"), status_code=302)
    try:
        sessions = restrict_query(
            request, parse_list_query(shared_params(request.query_params), SESSION_SORT_KEYS)
        )
    except BadParameterError as error:
        return _bad_request(request, store, "users", error)
    except ProjectNotVisibleError:
        return _not_found(request, store, "users", "user", user_id)
    detail = store.get_user(user_id, sessions)
    if detail is None or not can_see(request, detail.summary.project):
        return _not_found(request, store, "users", "user", user_id)
    context = {
        **_chrome(request, store, "users", Links(request).path("web_users")),
        "user": detail.summary,
        "page": detail.sessions,
        "query": sessions,
        "sort_keys": SESSION_SORT_KEYS,
        "sort_labels": SORT_LABELS,
    }
    return render(request, "user.html", context)


@router.get("/traces", name="web_traces")
def traces_page(request: Request) -> Response:
    return _list_page(
        request,
        section="traces",
        template="traces.html",
        sort_keys=TRACE_SORT_KEYS,
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
        return _not_found(request, store, "traces", "trace", trace_id)
    try:
        offset = page_offset(request.query_params.get("offset"))
    except BadParameterError as error:
        return _bad_request(request, store, "traces", error)
    page_size = request.app.state.settings.trace_page_spans
    context = {
        **_chrome(request, store, "traces", Links(request).path("web_traces")),
        "trace": detail.summary,
        "view": trace_view(
            detail,
            offset=offset,
            limit=page_size,
            load=lambda span_ids: store.get_spans(detail.summary.trace_id, span_ids),
        ),
    }
    return render(request, "trace.html", context)


@router.get("/static/{name}", name="web_static")
def static_file(name: str) -> Response:
    if name not in STATIC_FILES:
        return Response("not found", status_code=404, media_type="text/plain")
    return static_response(name)
