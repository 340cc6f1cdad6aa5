"""End users' feedback, and ending a session: writes from the app (or its front end) about a
conversation, authenticated like ingest (a key with the ingest role, scoped to its projects).

``POST /api/feedback`` takes one object or a list, each::

    {"id": "your id for it (optional; the same id again replaces it)",
     "trace_id": "32 hex: the turn it is about" | "session_id": "the conversation",
     "project": "the project (needed when the spans have not arrived yet, or an id is in several)",
     "score": 1 | -1 | any number within ±1,000,000, "label": "...", "comment": "...",
     "user_id": "who gave it (optional)"}

Stored as evaluation results named ``feedback`` with source ``feedback``: counted per turn,
session and user (a score of at least 0.5 is a thumbs-up), sortable (``sort=feedback``) and
filterable (``has_negative_feedback``). Feedback may come before the turn's spans (a web handler
answers before the exporter sends): it counts once they arrive. Answers as ``/api/evaluations``:
200 all stored, 207 some, 422 none.

``POST /api/sessions/{id}/end?project=P`` marks the conversation ended now: its session
evaluators may run, and it shows as ended until a later turn reopens it.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from spanloom.server.api.evaluations import read_json_items, store_results
from spanloom.server.auth.scope import principal_of
from spanloom.server.errors import HttpError
from spanloom.server.store.base import Store, StoreBusyError, StoreClosedError, StoreUnavailableError
from spanloom.server.store.evaluation_types import FEEDBACK, MAX_ABS_SCORE, EvaluationInput

router = APIRouter(prefix="/api", tags=["feedback"])

MAX_ITEMS = 1_000
MAX_BODY_BYTES = 1024 * 1024
MAX_COMMENT = 10_000
MAX_TEXT = 200  # ids, labels, projects
_HEX = frozenset("0123456789abcdef")


def _text(item: dict[str, Any], key: str, limit: int = MAX_TEXT) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValueError(f"{key} must be a non-empty string of at most {limit} characters")
    return value.strip()


def parse_feedback(item: object) -> EvaluationInput:
    """One feedback of the body; raises ValueError saying what is wrong with it."""
    if not isinstance(item, dict):
        raise ValueError("each feedback must be an object")
    score = item.get("score")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError("score must be a finite number (1 for a thumbs-up, -1 for a thumbs-down)")
        if abs(score) > MAX_ABS_SCORE:
            raise ValueError(f"score must be within ±{MAX_ABS_SCORE:,.0f}")
        score = float(score)
    label = _text(item, "label")
    if score is None and label is None:
        raise ValueError("give a score, a label or both")
    trace_id = _text(item, "trace_id", 32)
    if trace_id is not None and (len(trace_id) != 32 or not set(trace_id.lower()) <= _HEX):
        raise ValueError("trace_id must be 32 hex digits")
    session_id = _text(item, "session_id", 256)
    if (trace_id is None) == (session_id is None):
        raise ValueError("give trace_id (a turn) or session_id (the conversation), one of them")
    comment = item.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise ValueError("comment must be a string")
    user_id = _text(item, "user_id", 256)
    return EvaluationInput(
        name=FEEDBACK,
        source="feedback",
        trace_id=trace_id.lower() if trace_id else None,
        session_id=session_id,
        project=_text(item, "project"),
        # Without an id, each feedback is its own: never one replacing another by accident.
        key=_text(item, "id") or uuid.uuid4().hex,
        score=score,
        label=label,
        explanation=comment[:MAX_COMMENT] if comment else None,
        details={"user_id": user_id} if user_id else {},
    )


@router.post(
    "/feedback",
    summary="End users' feedback on a turn or a conversation (200 all stored, 207 some, 422 none)",
    responses={
        207: {"description": "Some were stored; `rejected` lists the others and why"},
        400: {"description": "The body is not JSON, or not an object or a list of objects"},
        413: {"description": f"More than {MAX_ITEMS} items, or {MAX_BODY_BYTES} bytes"},
        422: {"description": "None was stored; `rejected` says why for each"},
        503: {"description": "The writer is saturated; retry after Retry-After seconds"},
    },
)
async def post_feedback(request: Request) -> JSONResponse:
    items = await read_json_items(request, "feedback", MAX_BODY_BYTES, MAX_ITEMS)
    principal = principal_of(request)
    # A key of one project needs no "project": feedback ahead of its spans goes there.
    only = (
        next(iter(principal.projects))
        if principal and principal.projects and len(principal.projects) == 1
        else None
    )

    def parse(raw: object) -> EvaluationInput:
        item = parse_feedback(raw)
        if item.project is None and only is not None:
            item.project = only
        return item

    return await store_results(request, items, parse)


def _project_to_end(request: Request, store: Store, session_id: str, project: str | None) -> str:
    """The project of the session to end: the one given, else the key's only project, else the one
    project that holds it. A project the key may not write answers as "give project"."""
    principal = principal_of(request)
    allowed = principal.projects if principal is not None else None
    if project is not None:
        if allowed is not None and project not in allowed:
            raise HttpError(404, "not_found", f"no project {project!r}")
        return project
    if allowed is not None and len(allowed) == 1:
        return next(iter(allowed))
    holders = [name for name in store.find_session_projects(session_id) if allowed is None or name in allowed]
    if len(holders) == 1:
        return holders[0]
    raise HttpError(
        400,
        "bad_parameter",
        "project: give the session's project"
        + (" (its id is in several)" if holders else " (no session of that id has arrived yet)"),
    )


@router.post(
    "/sessions/{session_id}/end",
    summary="Mark a conversation ended: its session evaluators may run; a later turn reopens it",
)
async def end_session(
    request: Request,
    session_id: str,
    project: str | None = Query(None, description="The session's project (needed when it is not clear)."),
) -> dict[str, Any]:
    store: Store = request.app.state.store
    chosen = _project_to_end(request, store, session_id, project or None)
    headers = {"Retry-After": "1"}
    try:
        future = store.end_session(chosen, session_id, time.time_ns())
    except (StoreBusyError, StoreClosedError):
        raise HttpError(503, "busy", "the writer is saturated; retry later", headers) from None
    try:
        await asyncio.wrap_future(future)
    except StoreUnavailableError as error:
        raise HttpError(503, "storage_unavailable", str(error), headers) from None
    return {"project": chosen, "session_id": session_id, "ended": True}
