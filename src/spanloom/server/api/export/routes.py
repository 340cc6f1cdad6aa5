"""GET /api/sessions/export: the sessions a list would show, every page of them, streamed as JSON
Lines, CSV or Parquet; one row per session or per turn, or each session as a chat example.

The body is made a chunk at a time while it is sent: a page of sessions from the store (by the
list's own cursor), then those sessions' turns in one read (`Store.list_session_turns`), encoded
and handed on. Starlette takes each chunk from the generator in a worker thread, so the event loop
never waits on the store, and the response is never in memory whole (Parquet keeps one row group).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field, model_validator
from starlette.responses import StreamingResponse

from spanloom.server.api.export.dataset import session_example
from spanloom.server.api.export.formats import (
    ENCODERS,
    MEDIA_TYPES,
    ExportFormat,
    ParquetUnavailableError,
    require_pyarrow,
)
from spanloom.server.api.export.rows import (
    DATASET_COLUMNS,
    SESSION_COLUMNS,
    TURN_COLUMNS,
    session_row,
    turn_rows,
)
from spanloom.server.api.store_dependency import get_store
from spanloom.server.auth.scope import ProjectNotVisibleError, restrict_query
from spanloom.server.errors import HttpError
from spanloom.server.list_params import BadParameterError, SessionListParams, metadata_filters
from spanloom.server.read_pacing import ReadPacing
from spanloom.server.settings import Settings
from spanloom.server.store.base import ListQuery, SessionSummary, Store

router = APIRouter(prefix="/api", tags=["api"])

# Sessions read per page of the list.
SESSION_PAGE = 500
# Turns read at once (a page's sessions are split to stay under it; a session with more is read
# alone). With their LLM spans, whose messages repeat the history, fewer.
TURN_BUDGET = 2_000
SPANS_TURN_BUDGET = 300


class ExportParams(SessionListParams):
    """The sessions list's filters and sort, and what to make of each session."""

    format: Literal["jsonl", "csv", "parquet"] = Field("jsonl", description="jsonl, csv or parquet.")
    per: Literal["session", "turn"] = Field("session", description="One row per session, or per turn.")
    as_: Literal["rows", "dataset"] = Field(
        "rows",
        alias="as",
        description="rows, or dataset: each session as one example in the OpenAI chat format.",
    )
    # Not a page size here: how many sessions in all (none: every one that matches).
    limit: int | None = Field(  # type: ignore[assignment]
        None, ge=1, description="At most this many sessions (default: all that match)."
    )

    @model_validator(mode="after")
    def _dataset_is_per_session(self) -> ExportParams:
        if self.as_ == "dataset" and self.per == "turn":
            raise ValueError("as: a dataset example is a whole session: per=turn does not apply")
        return self


def _query(request: Request, params: ExportParams) -> ListQuery:
    try:
        metadata = metadata_filters(request.query_params)
    except BadParameterError as error:
        raise HttpError(400, "bad_parameter", str(error)) from None
    query = params.to_query(metadata)
    settings: Settings = request.app.state.settings
    query.idle_before_ns = settings.idle_before_ns()
    try:
        return restrict_query(request, query)
    except ProjectNotVisibleError as error:
        # The same answer as for a project that does not exist.
        raise HttpError(404, "not_found", f"no project {error.args[0]!r}") from None


def _session_pages(store: Store, query: ListQuery, limit: int | None) -> Iterator[list[SessionSummary]]:
    remaining = limit
    query = replace(query, limit=min(SESSION_PAGE, remaining or SESSION_PAGE))
    while True:
        page = store.list_sessions(query)
        items = page.items if remaining is None else page.items[:remaining]
        if items:
            yield items
        if remaining is not None:
            remaining -= len(items)
            if remaining <= 0:
                return
        if page.next_cursor is None:
            return
        query = replace(query, cursor=page.next_cursor, limit=min(SESSION_PAGE, remaining or SESSION_PAGE))


def _groups(sessions: Sequence[SessionSummary], budget: int) -> Iterator[list[SessionSummary]]:
    """`sessions` in runs of one project holding about `budget` turns at most (one session with
    more is a run of its own)."""
    group: list[SessionSummary] = []
    turns = 0
    for session in sessions:
        if group and (turns + session.trace_count > budget or session.project != group[0].project):
            yield group
            group, turns = [], 0
        group.append(session)
        turns += session.trace_count
    if group:
        yield group


def _rows(store: Store, params: ExportParams, query: ListQuery) -> Iterator[list[dict[str, Any]]]:
    idle_before = query.idle_before_ns or 0
    dataset = params.as_ == "dataset"
    for sessions in _session_pages(store, query, params.limit):
        if params.per == "session" and not dataset:
            yield [session_row(session, idle_before) for session in sessions]
            continue
        for group in _groups(sessions, SPANS_TURN_BUDGET if dataset else TURN_BUDGET):
            found = {
                entry.session_id: entry
                for entry in store.list_session_turns(
                    group[0].project, [session.session_id for session in group], with_spans=dataset
                )
            }
            rows: list[dict[str, Any]] = []
            for session in group:
                turns = found.get(session.session_id)
                if turns is None:
                    continue  # deleted since the list was read
                if dataset:
                    rows.append(session_example(session, turns))
                else:
                    rows.extend(turn_rows(session, turns))
            yield rows


def _body(store: Store, params: ExportParams, query: ListQuery, pacing: ReadPacing) -> Iterator[bytes]:
    columns = (
        DATASET_COLUMNS
        if params.as_ == "dataset"
        else TURN_COLUMNS
        if params.per == "turn"
        else SESSION_COLUMNS
    )
    encoder = ENCODERS[params.format](columns)
    began = time.thread_time()
    for rows in _rows(store, params, query):
        data = encoder.add(rows)
        # A long export gives way to ingest like the other big reads (read_pacing.py).
        pacing.yield_to_ingest(time.thread_time() - began)
        if data:
            yield data
        began = time.thread_time()
    tail = encoder.finish()
    if tail:
        yield tail


_EXTENSIONS: dict[ExportFormat, str] = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}


@router.get(
    "/sessions/export",
    summary="Sessions (or their turns, or chat examples) as JSON Lines, CSV or Parquet, streamed",
    description=(
        "Takes the filters and sort of `GET /api/sessions` and exports every session that matches"
        " (`limit`: at most that many). `per=turn`: one row per turn. `as=dataset`: each session as"
        ' `{"messages": [...], "metadata": {...}}` in the OpenAI chat format, built from its LLM'
        " calls; masked fields stay masked. Also `metadata.KEY=VALUE` (repeatable)."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}},
        501: {"description": "Parquet without pyarrow installed"},
    },
)
def export_sessions(
    request: Request, params: Annotated[ExportParams, Query()], store: Store = Depends(get_store)
) -> StreamingResponse:
    if params.format == "parquet":
        try:
            require_pyarrow()
        except ParquetUnavailableError as error:
            raise HttpError(501, "not_installed", str(error)) from None
    query = _query(request, params)
    kind = "dataset" if params.as_ == "dataset" else "turns" if params.per == "turn" else "sessions"
    filename = f"{query.project or 'spanloom'}-{kind}.{_EXTENSIONS[params.format]}"
    return StreamingResponse(
        _body(store, params, query, request.app.state.read_pacing),
        media_type=MEDIA_TYPES[params.format],
        headers={"Content-Disposition": f'attachment; filename="{_safe(filename)}"'},
    )


def _safe(filename: str) -> str:
    """A header-safe file name: a project name may hold anything."""
    return "".join(char if char.isascii() and (char.isalnum() or char in "-_.") else "_" for char in filename)
