"""JSON endpoints: projects, sessions, users, traces. Lists answer ``{"items": [...], "next_cursor": ...}``.

Handlers are plain functions: FastAPI runs them in its thread pool, and the store gives each of
those threads its own read connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from spanloom.server.api import serialize
from spanloom.server.auth.scope import ProjectNotVisibleError, can_see, restrict_query
from spanloom.server.errors import HttpError
from spanloom.server.query_params import (
    DEFAULT_TRACE_SPANS,
    MAX_TRACE_SPANS,
    BadParameterError,
    parse_list_query,
    parse_trace_span_page,
)
from spanloom.server.store.base import (
    SESSION_SORT_KEYS,
    TRACE_SORT_KEYS,
    USER_SORT_KEYS,
    ListQuery,
    Store,
)

router = APIRouter(prefix="/api", tags=["api"])

_METADATA_HELP = " Also `metadata.KEY=VALUE` (repeatable) keeps rows whose metadata has KEY equal to VALUE."


def get_store(request: Request) -> Store:
    return request.app.state.store


def _scoped(request: Request, sort_keys: Sequence[str]) -> ListQuery:
    """The list parameters, with `project` forced into what the caller's key may read."""
    try:
        return restrict_query(request, parse_list_query(request.query_params, sort_keys))
    except BadParameterError as error:
        raise HttpError(400, "bad_parameter", str(error)) from None
    except ProjectNotVisibleError as error:
        # The same answer as for a project that does not exist.
        raise HttpError(404, "not_found", f"no project {error.args[0]!r}") from None


def _not_found(kind: str, identifier: str) -> HttpError:
    return HttpError(404, "not_found", f"no {kind} {identifier!r}")


def _list_query(sort_keys: Sequence[str]) -> Callable[..., ListQuery]:
    """A dependency documenting the list parameters in OpenAPI and parsing them with query_params."""

    def dependency(
        request: Request,
        project: str | None = Query(None, description="Project name."),
        user_id: str | None = Query(None, description="Only this user's rows."),
        start: str | None = Query(None, description="ISO 8601 or Unix seconds: rows active at or after."),
        end: str | None = Query(None, description="ISO 8601 or Unix seconds: rows active at or before."),
        has_error: str | None = Query(None, description="true: only rows with errors; false: only without."),
        q: str | None = Query(None, description="Case-insensitive text search over ids, inputs and outputs."),
        tag: list[str] | None = Query(None, description="Keep rows carrying this tag (repeatable)."),
        sort: str | None = Query(
            None, description=f"One of: {', '.join(sort_keys)} (default {sort_keys[0]})."
        ),
        order: str | None = Query(None, description="asc or desc (default desc)."),
        limit: str | None = Query(None, description="Page size, 1 to 1000 (default 50)."),
        cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
    ) -> ListQuery:
        return _scoped(request, sort_keys)

    return dependency


def _user_sessions_query(
    request: Request,
    sort: str | None = Query(None, description=f"One of: {', '.join(SESSION_SORT_KEYS)}."),
    order: str | None = Query(None, description="asc or desc (default desc)."),
    limit: str | None = Query(None, description="Page size, 1 to 1000 (default 50)."),
    cursor: str | None = Query(None, description="`sessions.next_cursor` of the previous page."),
) -> ListQuery:
    """The page of a user's sessions; the other session filters apply too."""
    return _scoped(request, SESSION_SORT_KEYS)


def _trace_filters(
    session_id: str | None = Query(None, description="Only this session's traces."),
    span_kind: str | None = Query(None, description="Traces with a span of this kind (LLM, TOOL, ...)."),
    model: str | None = Query(None, description="Traces with a span calling this model."),
    status: str | None = Query(None, description="UNSET, OK or ERROR."),
) -> None:
    """Documents the trace-only filters; parse_list_query reads them with the rest."""


def _page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


@router.get("/projects", summary="Projects with span, trace, session and user counts")
def list_projects(request: Request, store: Store = Depends(get_store)) -> dict[str, Any]:
    projects = [project for project in store.list_projects() if can_see(request, project.name)]
    return {"items": [serialize.project_json(project) for project in projects]}


@router.get(
    "/sessions", summary="Sessions (conversations), filtered, sorted and paged", description=_METADATA_HELP
)
def list_sessions(
    query: ListQuery = Depends(_list_query(SESSION_SORT_KEYS)), store: Store = Depends(get_store)
) -> dict[str, Any]:
    page = store.list_sessions(query)
    return _page([serialize.session_json(session) for session in page.items], page.next_cursor)


@router.get("/sessions/{session_id}", summary="One session: aggregates, every turn, the first failing turn")
def get_session(request: Request, session_id: str, store: Store = Depends(get_store)) -> dict[str, Any]:
    detail = store.get_session(session_id)
    if detail is None or not can_see(request, detail.summary.project):
        raise _not_found("session", session_id)
    return serialize.session_detail_json(detail)


@router.get("/users", summary="Users, filtered, sorted and paged")
def list_users(
    query: ListQuery = Depends(_list_query(USER_SORT_KEYS)), store: Store = Depends(get_store)
) -> dict[str, Any]:
    page = store.list_users(query)
    return _page([serialize.user_json(user) for user in page.items], page.next_cursor)


@router.get("/users/{user_id}", summary="One user: aggregates and their sessions (paged like /api/sessions)")
def get_user(
    request: Request,
    user_id: str,
    sessions: ListQuery = Depends(_user_sessions_query),
    store: Store = Depends(get_store),
) -> dict[str, Any]:
    detail = store.get_user(user_id, sessions)
    # A user's project is that of their first trace (see UserSummary): a per-project key sees a user
    # whose first trace is in its project; their sessions are filtered to it either way.
    if detail is None or not can_see(request, detail.summary.project):
        raise _not_found("user", user_id)
    return serialize.user_detail_json(detail)


@router.get(
    "/traces",
    summary="Traces, filtered, sorted and paged",
    description=_METADATA_HELP,
    dependencies=[Depends(_trace_filters)],
)
def list_traces(
    query: ListQuery = Depends(_list_query(TRACE_SORT_KEYS)), store: Store = Depends(get_store)
) -> dict[str, Any]:
    page = store.list_traces(query)
    return _page([serialize.trace_json(trace) for trace in page.items], page.next_cursor)


@router.get(
    "/traces/{trace_id}",
    summary="One trace: its spans with parent links, attributes, events, a page at a time",
    description=(
        f"A trace of up to `limit` spans (default {DEFAULT_TRACE_SPANS}) comes whole, in start order,"
        " with `next_cursor` null. A larger one comes a page at a time: pass each page's `next_cursor`"
        " as `cursor` for the next. Pages share no span and together hold them all; each is in start"
        " order (order the whole by `start_time` once every page is in)."
    ),
)
def get_trace(
    request: Request,
    trace_id: str,
    limit: str | None = Query(None, description=f"Spans per page, 1 to {MAX_TRACE_SPANS}."),
    cursor: str | None = Query(None, description="The previous page's next_cursor."),
    store: Store = Depends(get_store),
) -> dict[str, Any]:
    try:
        page_limit, page_cursor = parse_trace_span_page(request.query_params)
    except BadParameterError as error:
        raise HttpError(400, "bad_parameter", str(error)) from None
    detail = store.get_trace(trace_id.lower(), page_limit, page_cursor)
    if detail is None or not can_see(request, detail.summary.project):
        raise _not_found("trace", trace_id)
    return serialize.trace_detail_json(detail)
