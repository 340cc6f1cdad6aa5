"""``GET /api/spans``: stored spans a page at a time, for notebooks and the Python client.

The store's own span order (project, start time, trace id, span id) is the only order: a page is
one index range whatever the filters, and the pages partition the spans that match. A scoped key
reads its own projects' spans only, as the other lists do.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from spanloom.server.api import serialize
from spanloom.server.api.json_body import json_response
from spanloom.server.api.store_dependency import get_store
from spanloom.server.auth.scope import ProjectNotVisibleError, restrict_query
from spanloom.server.errors import HttpError
from spanloom.server.list_params import DEFAULT_PAGE_SIZE, Text, Time
from spanloom.server.store.base import MAX_PAGE_SIZE, ListQuery, Store
from spanloom.server.store.cursor import InvalidCursorError

router = APIRouter(prefix="/api", tags=["api"])


def _upper(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().upper() or None
    return value


class SpanListParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    project: Text = Field(None, description="Project name.")
    span_kind: Annotated[Text, BeforeValidator(_upper)] = Field(None, description="LLM, TOOL, CHAIN, ...")
    start: Time = Field(None, description="ISO 8601 or Unix seconds: spans starting at or after.")
    end: Time = Field(None, description="ISO 8601 or Unix seconds: spans starting at or before.")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    cursor: Text = Field(None, description="`next_cursor` of the previous page.")


@router.get(
    "/spans",
    summary="Spans by (project, start time, trace id, span id), filtered and paged",
    response_model=dict[str, Any],
)
def list_spans(
    request: Request, params: Annotated[SpanListParams, Query()], store: Store = Depends(get_store)
) -> Response:
    query = ListQuery(
        project=params.project,
        span_kind=params.span_kind,
        start_ns=params.start,
        end_ns=params.end,
        limit=params.limit,
        cursor=params.cursor,
    )
    try:
        query = restrict_query(request, query)
    except ProjectNotVisibleError as error:
        raise HttpError(404, "not_found", f"no project {error.args[0]!r}") from None
    try:
        page = store.list_spans(query)
    except InvalidCursorError as error:
        # A cursor this server did not make (or one of another list).
        raise HttpError(400, "bad_parameter", f"cursor: {error}") from None
    return json_response(
        {"items": [serialize.span_json(span) for span in page.items], "next_cursor": page.next_cursor}
    )
