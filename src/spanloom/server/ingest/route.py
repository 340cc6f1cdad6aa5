"""``POST /v1/traces``: OTLP/HTTP ingest, protobuf or JSON, answered only after commit.

This module is the HTTP transport; what happens to the body is pipeline.py's, shared with gRPC.
Checks happen before the store is touched: 415 for a content type or encoding it does not speak,
413 for a body over the limit (also after decompression) or more spans or values than allowed in
one request (counted before decoding: see value_budget.py), 400 for a body that does not decode.
A full write queue answers 503 with Retry-After, which OTLP exporters retry; so does a write the
storage failed (a full disk, an I/O error), which was rolled back whole: nothing is acknowledged
that was not committed. Spans accepted in part are reported in `partial_success`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from spanloom.server.auth.scope import principal_of
from spanloom.server.errors import HttpError
from spanloom.server.ingest.decode import encode_response
from spanloom.server.ingest.pipeline import (
    TOO_MANY_SPANS,
    TOO_MANY_VALUES,
    UNDECODABLE,
    IngestPipeline,
    IngestRefusedError,
)
from spanloom.server.request_body import check_declared_length, check_encoding, read_limited

PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPE = "application/json"
# Refusals that are not worth a retry; every other one is a 503 with Retry-After.
REFUSAL_STATUS = {UNDECODABLE: 400, TOO_MANY_SPANS: 413, TOO_MANY_VALUES: 413}


def create_ingest_router(pipeline: IngestPipeline, retry_after_seconds: int) -> APIRouter:
    router = APIRouter(tags=["ingest"])
    busy_headers = {"Retry-After": str(retry_after_seconds)}
    max_body_bytes = pipeline.limits.max_body_bytes

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
            pending = await run_in_threadpool(pipeline.submit, body, as_json, projects)
            outcome = await pending.outcome_async()
        except IngestRefusedError as refused:
            if refused.retry:
                raise HttpError(503, refused.code, refused.message, busy_headers) from None
            raise HttpError(REFUSAL_STATUS[refused.code], refused.code, refused.message) from None
        return Response(
            encode_response(outcome.rejected, outcome.error_message, as_json),
            media_type=JSON_TYPE if as_json else PROTOBUF_TYPES[0],
        )

    return router
