"""``POST /v1/traces``: OTLP/HTTP ingest, protobuf or JSON, answered only after commit.

Checks happen before the store is touched: 415 for a content type or encoding it does not
speak, 413 for a body over the limit (also after decompression) or more spans or values than
allowed in one request (counted before decoding: see value_budget.py), 400 for a body that does
not decode. A full write queue answers 503 with Retry-After, which OTLP exporters retry; so does
a write the storage failed (a full disk, an I/O error), which was rolled back whole: nothing is
acknowledged that was not committed.

Spans accepted in part are reported in `partial_success` (rejected count and why): invalid ids,
a span id repeated in the request, a trace over its span limit, and, with a per-project key,
spans of projects the key may not send to, or of a trace another project owns (the store decides
that, at commit). The rest of the batch is stored.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from spanloom.server.auth.scope import principal_of
from spanloom.server.errors import HttpError
from spanloom.server.ingest.decode import UndecodableBodyError, decode_json, decode_protobuf, encode_response
from spanloom.server.ingest.limits import IngestLimits, TooManySpansError
from spanloom.server.ingest.normalize import NormalizedBatch, normalize_request
from spanloom.server.ingest.trace_budget import TraceBudget
from spanloom.server.ingest.value_budget import TooManyValuesError, check_json_budget, check_protobuf_budget
from spanloom.server.pricing import PriceTable
from spanloom.server.request_body import check_declared_length, check_encoding, read_limited
from spanloom.server.store.base import (
    InsertResult,
    SpanRecord,
    Store,
    StoreBusyError,
    StoreClosedError,
    StoreUnavailableError,
)

PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPE = "application/json"


def _count_rejected(batch: NormalizedBatch, dropped: int, why: str) -> None:
    """Add `dropped` spans, rejected because `why`, to what partial_success reports."""
    if not dropped:
        return
    previous = batch.error_message.partition(": ")[2]
    batch.rejected += dropped
    batch.error_message = f"{batch.rejected} span(s) rejected: {'; '.join(filter(None, (previous, why)))}"


def _reject(batch: NormalizedBatch, kept: list[Any], why: str) -> None:
    """Drop from `batch` the spans not in `kept`, saying `why` in partial_success."""
    dropped = len(batch.spans) - len(kept)
    batch.spans = kept
    _count_rejected(batch, dropped, why)


def _scope_and_budget(batch: NormalizedBatch, projects: frozenset[str] | None, budget: TraceBudget) -> None:
    if projects is not None:
        allowed = [span for span in batch.spans if span.project in projects]
        _reject(batch, allowed, "this key may not send spans of the project(s) named by their resource")
    kept, overflowed = budget.split(batch.spans)
    if overflowed:
        _reject(
            batch,
            kept,
            f"trace(s) {', '.join(overflowed[:3])}{' ...' if len(overflowed) > 3 else ''} would exceed "
            f"{budget.limit} spans (SPANLOOM_MAX_SPANS_PER_TRACE)",
        )


def create_ingest_router(
    store: Store,
    prices: PriceTable,
    limits: IngestLimits,
    retry_after_seconds: int,
    on_committed: Callable[[Sequence[SpanRecord]], None] | None = None,
) -> APIRouter:
    """`on_committed` gets each request's spans once they are committed (the server evaluators'
    queue): it must return at once, as the 200 waits for it."""
    router = APIRouter(tags=["ingest"])
    busy_headers = {"Retry-After": str(retry_after_seconds)}
    max_body_bytes = limits.max_body_bytes
    budget = TraceBudget(store, limits.max_spans_per_trace)
    decoding = threading.Lock()

    def _accept(
        body: bytes, as_json: bool, projects: frozenset[str] | None
    ) -> tuple[NormalizedBatch, Future[Any]]:
        """Blocking: decode, normalize, apply the key's scope and the trace budget, queue the write."""
        if as_json:
            check_json_budget(body, limits.max_values_per_request)
        else:
            check_protobuf_budget(body, limits.max_values_per_request, limits.max_spans_per_request)
        # One decoded request at a time: decoding holds the GIL, so concurrent requests gain
        # nothing from overlapping here, and each decoded tree (up to the values budget) is
        # freed before the next one is built.
        with decoding:
            request = decode_json(body) if as_json else decode_protobuf(body)
            batch = normalize_request(request, prices, limits)
            del request
        _scope_and_budget(batch, projects, budget)
        return batch, store.insert_spans(batch.spans, projects)

    @router.post(
        "/v1/traces",
        summary="OTLP/HTTP trace export (protobuf or JSON, optionally gzip)",
        response_class=Response,
        responses={
            200: {"description": "ExportTraceServiceResponse, in the request's encoding, after commit"},
            400: {"description": "The body does not decode"},
            401: {"description": "Keys are configured and the request carries no valid one"},
            403: {"description": "The key may not send spans (a read key)"},
            413: {
                "description": "The body is over the size limit (also after decompression), or holds "
                "more spans or values than one request may"
            },
            415: {"description": "Unsupported content type or content encoding"},
            503: {
                "description": "The writer is saturated, or the storage failed the write (full disk, "
                "I/O error) and nothing was stored; retry after Retry-After seconds"
            },
        },
    )
    async def export_traces(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in PROTOBUF_TYPES:
            as_json = False
        elif content_type == JSON_TYPE:
            as_json = True
        else:
            raise HttpError(
                415,
                "unsupported_media_type",
                f"content type {content_type or '(none)'!r} is not OTLP; send application/x-protobuf "
                "or application/json",
            )
        encoding = check_encoding(request.headers.get("content-encoding"))
        check_declared_length(request.headers.get("content-length"), max_body_bytes)
        body = await read_limited(request.stream(), encoding, max_body_bytes)
        principal = principal_of(request)
        projects = principal.projects if principal is not None else None
        try:
            # Decoding, normalizing and the store's row building take milliseconds of CPU per
            # batch: off the event loop, in one hop, so API requests are not held up behind it
            # and one request's preparation overlaps with the writer committing another's.
            batch, future = await run_in_threadpool(_accept, body, as_json, projects)
        except UndecodableBodyError as error:
            raise HttpError(400, "undecodable", str(error)) from None
        except TooManySpansError as error:
            raise HttpError(413, "too_many_spans", str(error)) from None
        except TooManyValuesError as error:
            raise HttpError(413, "too_many_values", str(error)) from None
        except StoreBusyError:
            raise HttpError(503, "busy", "the writer is saturated; retry later", busy_headers) from None
        except StoreClosedError:
            raise HttpError(503, "shutting_down", "the server is shutting down", busy_headers) from None
        try:
            result: InsertResult = await asyncio.wrap_future(future)
        except StoreUnavailableError as error:
            code = "storage_full" if error.full else "storage_unavailable"
            raise HttpError(503, code, str(error), busy_headers) from None
        except Exception as error:
            # Typically the file is locked by another process: worth a retry, not a lost batch.
            raise HttpError(
                503, "write_failed", f"the spans were not stored: {error}", busy_headers
            ) from None
        _count_rejected(batch, result.rejected, "; ".join(result.reasons))
        budget.committed(result.written)
        if on_committed is not None and result.written:
            on_committed(result.written)
        return Response(
            encode_response(batch.rejected, batch.error_message, as_json),
            media_type=JSON_TYPE if as_json else PROTOBUF_TYPES[0],
        )

    return router
