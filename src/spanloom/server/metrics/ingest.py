"""What ingest counts: spans received, stored and rejected (by reason), and requests refused whole.

`spanloom_ingest_spans_received_total` counts the spans of requests that decoded and were queued
for the writer; each of them ends up in `..._stored_total` or in `..._rejected_total` under one
reason, so received = stored + the sum of rejected. A request refused before its spans reached
the writer (400, 413, 415, or 503 while the writer's queue is full) counts once in
`spanloom_ingest_requests_refused_total` under its error code, as do the 503s of a write the
storage failed.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter

# Why spans of an accepted request were not stored (partial_success), and why a whole batch that
# reached the writer was not: the label values of spanloom_ingest_spans_rejected_total.
INVALID_ID = "invalid_id"  # a trace or span id of the wrong length, or all zeros
DUPLICATE_SPAN = "duplicate_span"  # the same (trace id, span id) twice in one request
KEY_SCOPE = "key_scope"  # a project the sender's key may not write
TRACE_SPAN_LIMIT = "trace_span_limit"  # the trace would pass SPANLOOM_MAX_SPANS_PER_TRACE
STORE_REFUSED = "store_refused"  # a trace of another project, or a value the store cannot take
STORAGE_FULL = "storage_full"
STORAGE_UNAVAILABLE = "storage_unavailable"
WRITE_FAILED = "write_failed"
DECODER_FAILED = "decoder_failed"  # a decoding process ended while it held the request
REJECTION_REASONS = (
    INVALID_ID,
    DUPLICATE_SPAN,
    KEY_SCOPE,
    TRACE_SPAN_LIMIT,
    STORE_REFUSED,
    STORAGE_FULL,
    STORAGE_UNAVAILABLE,
    WRITE_FAILED,
    DECODER_FAILED,
)
# The error codes ingest answers with (server/ingest/route.py, server/request_body.py): shown at
# 0 from the start, so a rate over them exists before the first refusal.
REFUSAL_CODES = (
    "unsupported_media_type",
    "unsupported_encoding",
    "bad_encoding",
    "payload_too_large",
    "too_many_spans",
    "too_many_values",
    "undecodable",
    "busy",
    "shutting_down",
    STORAGE_FULL,
    STORAGE_UNAVAILABLE,
    WRITE_FAILED,
    DECODER_FAILED,
)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._received = Counter(
            "spanloom_ingest_spans_received",
            "Spans of OTLP requests that decoded and were queued for writing",
            registry=registry,
        )
        self._stored = Counter(
            "spanloom_ingest_spans_stored",
            "Spans committed to the store (a re-sent span counts again)",
            registry=registry,
        )
        self._rejected = Counter(
            "spanloom_ingest_spans_rejected",
            "Spans received but not stored, by reason",
            ["reason"],
            registry=registry,
        )
        self._refused = Counter(
            "spanloom_ingest_requests_refused",
            "OTLP requests answered with an error, by its code",
            ["reason"],
            registry=registry,
        )
        for reason in REJECTION_REASONS:
            self._rejected.labels(reason)
        for code in REFUSAL_CODES:
            self._refused.labels(code)

    def answered(self, rejected_by: Mapping[str, int], stored: int) -> None:
        """A request the store answered: `stored` spans committed, `rejected_by` the others."""
        rejected = 0
        for reason, count in rejected_by.items():
            if count:
                self._rejected.labels(reason).inc(count)
                rejected += count
        self._stored.inc(stored)
        self._received.inc(stored + rejected)

    def failed(self, rejected_by: Mapping[str, int], queued: int, reason: str) -> None:
        """A write the storage failed: its `queued` spans rejected under `reason` (and the
        request's partial rejections under theirs)."""
        self.answered({**rejected_by, reason: rejected_by.get(reason, 0) + queued}, 0)

    def refused(self, code: str) -> None:
        self._refused.labels(code).inc()
