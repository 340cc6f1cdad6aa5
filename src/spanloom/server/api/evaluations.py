"""``POST /api/evaluations`` (results from outside the app), ``GET /api/evaluations`` (the stored
results, one item each, a page at a time) and ``GET /api/evaluations/summary`` (aggregates).

The POST body is a JSON list of results (or ``{"evaluations": [...]}``), each::

    {"span_id": "...16 hex", "trace_id": "...32 hex (optional with span_id)",
     "name": "helpfulness", "score": 0.8, "label": "pass", "explanation": "...",
     "time": "ISO 8601 or Unix seconds (optional, default now)"}

An item names its span by ``span_id`` (with ``trace_id`` when known: span ids are only unique
within a trace) or by ``trace_id`` alone, meaning that trace's root span; or it judges a whole
conversation: ``"session_id"`` (with ``"project"`` when the id is in several projects), and
optionally ``"details": {"turns": [1-based turn numbers it points at], ...}``. The answer is always
``{"accepted": N, "rejected": [{"index": I, "reason": "..."}]}`` with the status saying which
case it is:

- 200: every item was stored (committed before the answer);
- 207: some were stored, those in ``rejected`` were not (an unknown span, a malformed item);
- 422: none was stored.

A body that is not JSON, or not a list of objects, is a 400 error; over MAX_ITEMS items or
MAX_BODY_BYTES bytes (also after gzip decompression), 413.
Results sent again with the same (span, name) replace the earlier ones (the source is ``api``).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from spanloom.server.api import serialize
from spanloom.server.api.json_body import json_response
from spanloom.server.auth.scope import ProjectNotVisibleError, principal_of, restrict_query
from spanloom.server.errors import HttpError
from spanloom.server.json_text import parse_json
from spanloom.server.list_params import BadParameterError, EvaluationListParams, parse_time
from spanloom.server.request_body import check_declared_length, check_encoding, read_limited
from spanloom.server.store.base import (
    ListQuery,
    Store,
    StoreBusyError,
    StoreClosedError,
    StoreUnavailableError,
)
from spanloom.server.store.cursor import InvalidCursorError
from spanloom.server.store.evaluation_types import (
    MAX_ABS_SCORE,
    MAX_EVALUATION_NAME,
    EvaluationInput,
    EvaluationRejection,
    GroupBy,
)

router = APIRouter(prefix="/api", tags=["evaluations"])

MAX_ITEMS = 10_000
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_LABEL = 200
MAX_EXPLANATION = 10_000
MAX_ID = 256  # session ids and project names
MAX_DETAILS = 16 * 1024  # stored with the result and shown on the session page
_HEX = frozenset("0123456789abcdef")
_GROUPS = ("session", "user", "project")


def _hex_id(item: dict[str, Any], key: str, length: int) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != length or not set(value.lower()) <= _HEX:
        raise ValueError(f"{key} must be {length} hex digits")
    return value.lower()


def parse_item(item: object) -> EvaluationInput:
    """One result of the body; raises ValueError saying what is wrong with it."""
    if not isinstance(item, dict):
        raise ValueError("each result must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_EVALUATION_NAME:
        raise ValueError(f"name must be a non-empty string of at most {MAX_EVALUATION_NAME} characters")
    score = item.get("score")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError("score must be a finite number")
        if abs(score) > MAX_ABS_SCORE:
            raise ValueError(f"score must be within ±{MAX_ABS_SCORE:,.0f}")
        score = float(score)
    label = item.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL):
        raise ValueError(f"label must be a non-empty string of at most {MAX_LABEL} characters")
    if score is None and label is None:
        raise ValueError("give a score, a label or both")
    explanation = item.get("explanation")
    if explanation is not None and not isinstance(explanation, str):
        raise ValueError("explanation must be a string")
    span_id, trace_id = _hex_id(item, "span_id", 16), _hex_id(item, "trace_id", 32)
    session_id, project = _text(item, "session_id", MAX_ID), _text(item, "project", MAX_ID)
    if (span_id is None and trace_id is None) == (session_id is None):
        raise ValueError(
            "give span_id (and trace_id if known), trace_id (its root span) or session_id (the whole"
            " conversation), one of them"
        )
    details = item.get("details")
    if details is not None and not (isinstance(details, dict) and session_id is not None):
        raise ValueError("details must be an object, on a session's result")
    if details and len(json.dumps(details, ensure_ascii=False)) > MAX_DETAILS:
        raise ValueError(f"details must be at most {MAX_DETAILS} characters of JSON")
    time_ns = None
    if item.get("time") is not None:
        try:
            time_ns = parse_time("time", str(item["time"]))
        except BadParameterError as error:
            raise ValueError(error.message) from None
    return EvaluationInput(
        name=name.strip(),
        source="api",
        span_id=span_id,
        trace_id=trace_id,
        score=score,
        label=label,
        explanation=explanation[:MAX_EXPLANATION] if explanation else None,
        time_ns=time_ns,
        session_id=session_id,
        project=project,
        details=details or {},
    )


def _text(item: dict[str, Any], key: str, limit: int) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValueError(f"{key} must be a non-empty string of at most {limit} characters")
    return value


@router.post(
    "/evaluations",
    summary="Store evaluation results on spans (200 all stored, 207 some, 422 none)",
    responses={
        207: {"description": "Some results were stored; `rejected` lists the others and why"},
        400: {"description": "The body is not a JSON list of objects (or not valid gzip)"},
        413: {"description": f"More than {MAX_ITEMS} results, or a body over {MAX_BODY_BYTES} bytes"},
        415: {"description": "A content encoding other than gzip or identity"},
        422: {"description": "No result was stored; `rejected` says why for each"},
        503: {"description": "The writer is saturated; retry after Retry-After seconds"},
    },
)
async def post_evaluations(request: Request) -> JSONResponse:
    items = await read_json_items(request, "evaluations", MAX_BODY_BYTES, MAX_ITEMS)
    return await store_results(request, items, parse_item)


async def read_json_items(request: Request, field: str, max_bytes: int, max_items: int) -> list[Any]:
    """A JSON list (or ``{field: [...]}``) from the body, refused on Content-Length and while
    streaming past `max_bytes` (a huge body is never held whole), or past `max_items` items."""
    encoding = check_encoding(request.headers.get("content-encoding"))
    check_declared_length(request.headers.get("content-length"), max_bytes)
    body = await read_limited(request.stream(), encoding, max_bytes)
    try:
        data = parse_json(body)
    except ValueError as error:
        raise HttpError(400, "bad_body", f"the body is not JSON we can take: {error}") from None
    if isinstance(data, dict) and isinstance(data.get(field), list):
        data = data[field]
    elif isinstance(data, dict) and field == "feedback":
        data = [data]  # one feedback, as an object
    if not isinstance(data, list):
        raise HttpError(400, "bad_body", f'send a JSON list (or {{"{field}": [...]}})')
    if len(data) > max_items:
        raise HttpError(413, "too_many_items", f"at most {max_items} items per request")
    return data


async def store_results(
    request: Request, data: list[Any], parse: Callable[[object], EvaluationInput]
) -> JSONResponse:
    """Parse each item, store those that parse (a scoped key judges only its projects' targets:
    others answer as unknown ones do), and answer 200 (all stored), 207 (some) or 422 (none)."""
    store: Store = request.app.state.store
    rejected: list[EvaluationRejection] = []
    items: list[EvaluationInput] = []
    positions: list[int] = []  # index in the body of each item passed to the store
    for index, raw in enumerate(data):
        try:
            items.append(parse(raw))
            positions.append(index)
        except ValueError as error:
            rejected.append(EvaluationRejection(index, str(error)))
    headers = {"Retry-After": "1"}
    principal = principal_of(request)
    try:
        future = store.insert_evaluations(items, principal.projects if principal is not None else None)
    except StoreBusyError:
        raise HttpError(503, "busy", "the writer is saturated; retry later", headers) from None
    except StoreClosedError:
        raise HttpError(503, "shutting_down", "the server is shutting down", headers) from None
    try:
        result = await asyncio.wrap_future(future)
    except StoreUnavailableError as error:
        code = "storage_full" if error.full else "storage_unavailable"
        raise HttpError(503, code, str(error), headers) from None
    rejected += [EvaluationRejection(positions[item.index], item.reason) for item in result.rejected]
    rejected.sort(key=lambda item: item.index)
    status = 200 if not rejected else 207 if result.accepted else 422
    content = {
        "accepted": result.accepted,
        "rejected": [{"index": item.index, "reason": item.reason} for item in rejected],
    }
    return JSONResponse(content, status_code=status)


@router.get(
    "/evaluations",
    summary="Evaluation results, one item each: on spans and turns, then on sessions; filtered and paged",
    response_model=dict[str, Any],
)
def list_evaluations(request: Request, params: Annotated[EvaluationListParams, Query()]) -> Response:
    """Each stored result once (one sent again replaces it), with its project, trace, span,
    session and user: `level` says what it judges (span, trace for a whole turn, session). A
    scoped key reads its own projects' results only, as the other lists do."""
    query = params.to_query()
    try:
        query.project = restrict_query(request, ListQuery(project=query.project)).project
    except ProjectNotVisibleError as error:
        raise HttpError(404, "not_found", f"no project {error.args[0]!r}") from None
    store: Store = request.app.state.store
    try:
        page = store.list_evaluations(query)
    except InvalidCursorError as error:
        raise HttpError(400, "bad_parameter", f"cursor: {error}") from None
    return json_response(
        {
            "items": [serialize.evaluation_result_json(result) for result in page.items],
            "next_cursor": page.next_cursor,
        }
    )


@router.get("/evaluations/summary", summary="Evaluation aggregates per session, user or project, worst first")
def evaluation_summary(
    request: Request,
    group_by: str = Query("session", description="session, user or project."),
    name: str | None = Query(None, description="Only this evaluation name."),
    project: str | None = Query(None, description="Only this project's sessions, users or results."),
    limit: int = Query(50, ge=1, le=1000, description="How many rows (default 50)."),
) -> dict[str, Any]:
    """Rows of (group, evaluation name) with count, mean score, pass rate and the worst result,
    lowest mean score first (rows without scores last). A result passes when its label is one of
    the pass labels (pass, correct, yes, true, safe, ...) or, with no label, when its score is
    at least 0.5."""
    if group_by not in _GROUPS:
        raise HttpError(400, "bad_parameter", f"group_by: expected one of {', '.join(_GROUPS)}")
    try:
        # A per-project key reads its own project's aggregates only, as the lists do.
        project = restrict_query(request, ListQuery(project=project or None)).project
    except ProjectNotVisibleError as error:
        raise HttpError(404, "not_found", f"no project {error.args[0]!r}") from None
    store: Store = request.app.state.store
    groups = store.summarize_evaluations(cast(GroupBy, group_by), name or None, project, limit)
    return {"items": [serialize.evaluation_group_json(group) for group in groups]}
