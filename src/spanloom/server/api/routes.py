"""JSON endpoints: projects, sessions, users, traces. Lists answer ``{"items": [...], "next_cursor": ...}``.

A session or user id is unique only inside its project: the detail routes take ``project=``;
without it, an id held by exactly one project the caller may read resolves to it, and one held by
several answers 409 with their names.

Handlers are plain functions: FastAPI runs them in its thread pool, and the store gives each of
those threads its own read connection. They answer with JSON bytes encoded in that thread, and a
trace's spans as a stream of bounded chunks (json_body.py): never encoded on the event loop, where
a big body held up ingest and every other request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from spanloom.server.api import serialize
from spanloom.server.api.json_body import json_response, streamed_json
from spanloom.server.api.store_dependency import get_store
from spanloom.server.auth.scope import (
    AmbiguousIdError,
    ProjectNotVisibleError,
    can_see,
    pick_project,
    restrict_query,
)
from spanloom.server.errors import HttpError
from spanloom.server.list_params import (
    BadParameterError,
    SessionListParams,
    SessionTurnParams,
    TraceListParams,
    TraceSpanPageParams,
    UserListParams,
    metadata_filters,
)
from spanloom.server.read_pacing import ReadPacing
from spanloom.server.settings import Settings
from spanloom.server.store.base import ListQuery, Store

router = APIRouter(prefix="/api", tags=["api"])

_METADATA_HELP = " Also `metadata.KEY=VALUE` (repeatable) keeps rows whose metadata has KEY equal to VALUE."
# What the OpenAPI schema says of each answer: the handlers return bytes (json_body.py), which
# FastAPI passes on as they are.
_OBJECT = dict[str, Any]
_AMBIGUOUS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Without `project`, the id exists in several projects (listed)"}
}


def _scoped(request: Request, query: ListQuery) -> ListQuery:
    """`query` with `project` forced into what the caller's key may read."""
    try:
        return restrict_query(request, query)
    except ProjectNotVisibleError as error:
        # The same answer as for a project that does not exist.
        raise HttpError(404, "not_found", f"no project {error.args[0]!r}") from None


def _list_query(request: Request, params: SessionListParams | UserListParams | TraceListParams) -> ListQuery:
    try:
        metadata = metadata_filters(request.query_params)
    except BadParameterError as error:
        raise HttpError(400, "bad_parameter", str(error)) from None
    query = params.to_query(metadata)
    query.idle_before_ns = _idle_before(request)
    return _scoped(request, query)


def _idle_before(request: Request) -> int:
    settings: Settings = request.app.state.settings
    return settings.idle_before_ns()


def _not_found(kind: str, identifier: str) -> HttpError:
    return HttpError(404, "not_found", f"no {kind} {identifier!r}")


def project_of(
    request: Request, kind: str, identifier: str, named: str | None, holders: Callable[[], list[str]]
) -> str:
    try:
        project = pick_project(request, named, holders)
    except AmbiguousIdError as error:
        raise HttpError(
            409,
            "ambiguous",
            f"{kind} {identifier!r} exists in several projects ({', '.join(error.projects)}): pass project=",
            details={"projects": error.projects},
        ) from None
    if project is None:
        raise _not_found(kind, identifier)
    return project


def _page(items: list[Any], next_cursor: str | None) -> Response:
    return json_response({"items": items, "next_cursor": next_cursor})


@router.get("/projects", summary="Projects with span, trace, session and user counts", response_model=_OBJECT)
def list_projects(request: Request, store: Store = Depends(get_store)) -> Response:
    projects = [project for project in store.list_projects() if can_see(request, project.name)]
    return json_response({"items": [serialize.project_json(project) for project in projects]})


@router.get(
    "/sessions",
    summary="Sessions (conversations), filtered, sorted and paged",
    description=(
        "`first_input` and `last_output` are previews: the words of the first user message and the"
        " last answer (read out of chat requests and responses), cut to 200 characters."
        " `GET /api/sessions/{id}` and its turns hold the texts whole." + _METADATA_HELP
    ),
    response_model=_OBJECT,
)
def list_sessions(
    request: Request, params: Annotated[SessionListParams, Query()], store: Store = Depends(get_store)
) -> Response:
    page = store.list_sessions(_list_query(request, params))
    return _page(
        [serialize.session_json(session, _idle_before(request)) for session in page.items], page.next_cursor
    )


# GET /api/sessions/compare and /api/sessions/export are routes of their own: a session with one of
# those ids cannot be read here (said in the schema, so that clients and schemathesis know).
_SHADOWED_SESSION_IDS = ["compare", "export"]


@router.get(
    "/sessions/{session_id}",
    summary="One session: aggregates, its turns a page at a time, the first failing turn",
    description=(
        "`turns` holds `limit` turns (default 100) from `turns_offset` on, in time order;"
        " `next_cursor` and `previous_cursor` page through the rest. `first_failing_turn` is found over"
        " the whole session; its `cursor` opens the page that starts at it."
    ),
    responses=_AMBIGUOUS,
    response_model=_OBJECT,
)
def get_session(
    request: Request,
    session_id: Annotated[
        str,
        Path(
            description="The session's id (not `compare` or `export`: those paths are other routes)",
            json_schema_extra={"not": {"enum": _SHADOWED_SESSION_IDS}},
        ),
    ],
    params: Annotated[SessionTurnParams, Query()],
    store: Store = Depends(get_store),
) -> Response:
    chosen = project_of(
        request, "session", session_id, params.project, lambda: store.find_session_projects(session_id)
    )
    # The JSON has no tool spans (the page folds them into its transcript): not read.
    detail = store.get_session(chosen, session_id, params.limit, params.cursor, tool_calls=False)
    if detail is None:
        raise _not_found("session", session_id)
    return json_response(serialize.session_detail_json(detail, _idle_before(request)))


@router.get("/users", summary="Users, filtered, sorted and paged", response_model=_OBJECT)
def list_users(
    request: Request, params: Annotated[UserListParams, Query()], store: Store = Depends(get_store)
) -> Response:
    page = store.list_users(_list_query(request, params))
    return _page([serialize.user_json(user) for user in page.items], page.next_cursor)


@router.get(
    "/users/{user_id}",
    summary="One user: aggregates and their sessions (filtered, sorted and paged like /api/sessions)",
    description="`project` names the user's project (needed when the id is in several)." + _METADATA_HELP,
    responses=_AMBIGUOUS,
    response_model=_OBJECT,
)
def get_user(
    request: Request,
    user_id: str,
    params: Annotated[SessionListParams, Query()],
    store: Store = Depends(get_store),
) -> Response:
    chosen = project_of(request, "user", user_id, params.project, lambda: store.find_user_projects(user_id))
    sessions = _list_query(request, params)
    detail = store.get_user(chosen, user_id, sessions)
    if detail is None:
        raise _not_found("user", user_id)
    return json_response(serialize.user_detail_json(detail, _idle_before(request)))


@router.get(
    "/traces",
    summary="Traces, filtered, sorted and paged",
    description=_METADATA_HELP,
    response_model=_OBJECT,
)
def list_traces(
    request: Request, params: Annotated[TraceListParams, Query()], store: Store = Depends(get_store)
) -> Response:
    page = store.list_traces(_list_query(request, params))
    return _page([serialize.trace_json(trace) for trace in page.items], page.next_cursor)


@router.get(
    "/traces/{trace_id}",
    summary="One trace: its spans with parent links, attributes, events, a page at a time",
    description=(
        "A trace of up to `limit` spans (default 1,000) comes whole, in start order, with"
        " `next_cursor` null. A larger one comes a page at a time: pass each page's `next_cursor`"
        " as `cursor` for the next. Pages share no span and together hold them all; each is in start"
        " order (order the whole by `start_time` once every page is in)."
    ),
    response_model=_OBJECT,
)
def get_trace(
    request: Request,
    trace_id: str,
    params: Annotated[TraceSpanPageParams, Query()],
    store: Store = Depends(get_store),
) -> Response:
    began = time.thread_time()
    detail = store.get_trace(trace_id.lower(), params.limit, params.cursor)
    if detail is None or not can_see(request, detail.summary.project):
        raise _not_found("trace", trace_id)
    # A page of up to 10,000 spans: the one big read. It gives way to ingest (read_pacing.py)
    # after reading its rows and after each chunk of JSON.
    pacing: ReadPacing = request.app.state.read_pacing
    pacing.yield_to_ingest(time.thread_time() - began)
    return streamed_json(
        serialize.trace_detail_head(detail),
        "spans",
        detail.spans,
        serialize.span_json,
        serialize.trace_detail_tail(detail),
        after_chunk=pacing.yield_to_ingest,
    )
