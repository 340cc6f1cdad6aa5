"""What happens to an OTLP trace export once its transport has read the body: the part OTLP/HTTP
(route.py) and OTLP/gRPC (grpc_service.py) share, so both apply the same rules.

The transport reads the body under the size limit (decompressing it) and checks the sender's key;
then `IngestPipeline.submit` counts the values before decoding (value_budget.py), decodes and
normalizes (request_decoding.py; in a decoding process when the server has them,
decode_processes.py), applies the key's project scope and the per-trace budget, and queues the write.
`PendingExport.outcome()` waits for the commit: only then does the transport answer, with
partial_success saying how many spans were rejected and why (invalid ids, a span id repeated in
the request, a trace over its span limit, and, with a per-project key, spans of projects the key
may not send to, or of a trace another project owns: the store decides that, at commit).

A request refused whole raises `IngestRefusedError`: its `code` names the rule and each transport
maps it to its own status (HTTP 400/413/503, gRPC INVALID_ARGUMENT/UNAVAILABLE). `retry` is true
where the sender should send the same request again later (a saturated writer, a write the storage
failed and rolled back whole), and the transport says when (Retry-After, RetryInfo): nothing is
acknowledged that was not committed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from spanloom.server.ingest.decode import UndecodableBodyError
from spanloom.server.ingest.decode_processes import (
    DecodeProcessError,
    DecodeProcesses,
    DecodeProcessesClosedError,
)
from spanloom.server.ingest.limits import IngestLimits, TooManySpansError
from spanloom.server.ingest.normalize import NormalizedBatch
from spanloom.server.ingest.request_decoding import decode_request
from spanloom.server.ingest.trace_budget import TraceBudget
from spanloom.server.ingest.value_budget import TooManyValuesError
from spanloom.server.metrics.ingest import (
    DECODER_FAILED,
    KEY_SCOPE,
    STORAGE_FULL,
    STORAGE_UNAVAILABLE,
    STORE_REFUSED,
    TRACE_SPAN_LIMIT,
    WRITE_FAILED,
    IngestMetrics,
)
from spanloom.server.pricing import PriceTable
from spanloom.server.read_pacing import ReadPacing
from spanloom.server.store.base import (
    InsertResult,
    SpanRecord,
    Store,
    StoreBusyError,
    StoreClosedError,
    StoreUnavailableError,
)

# Refusal codes: the request does not decode, or holds more than one request may.
UNDECODABLE = "undecodable"
TOO_MANY_SPANS = "too_many_spans"
TOO_MANY_VALUES = "too_many_values"


class IngestRefusedError(Exception):
    """The whole request is refused and nothing of it stored. `code`: which rule (the HTTP error
    body's code); `retry`: whether the same request may succeed later."""

    def __init__(self, code: str, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry = retry


@dataclass(frozen=True)
class ExportOutcome:
    """What the response's partial_success says: both empty when every span was stored."""

    rejected: int
    error_message: str


def _count_rejected(batch: NormalizedBatch, dropped: int, why: str, reason: str) -> None:
    """Add `dropped` spans, rejected because `why`, to what partial_success reports (and to
    what /metrics counts under `reason`)."""
    if not dropped:
        return
    previous = batch.error_message.partition(": ")[2]
    batch.rejected += dropped
    batch.rejected_by[reason] = batch.rejected_by.get(reason, 0) + dropped
    batch.error_message = f"{batch.rejected} span(s) rejected: {'; '.join(filter(None, (previous, why)))}"


def _reject(batch: NormalizedBatch, kept: list[Any], why: str, reason: str) -> None:
    """Drop from `batch` the spans not in `kept`, saying `why` in partial_success."""
    dropped = len(batch.spans) - len(kept)
    if not dropped:
        return  # the batch's own list: a decoding process may have built its rows in it
    batch.spans = kept
    _count_rejected(batch, dropped, why, reason)


def _scope_and_budget(batch: NormalizedBatch, projects: frozenset[str] | None, budget: TraceBudget) -> None:
    if projects is not None:
        allowed = [span for span in batch.spans if span.project in projects]
        _reject(
            batch, allowed, "this key may not send spans of the project(s) named by their resource", KEY_SCOPE
        )
    kept, overflowed = budget.split(batch.spans)
    if overflowed:
        _reject(
            batch,
            kept,
            f"trace(s) {', '.join(overflowed[:3])}{' ...' if len(overflowed) > 3 else ''} would exceed "
            f"{budget.limit} spans (SPANLOOM_MAX_SPANS_PER_TRACE)",
            TRACE_SPAN_LIMIT,
        )


def _write_refusal(error: Exception) -> IngestRefusedError:
    """A write the store failed, as the sender hears it: always worth a retry."""
    if isinstance(error, StoreUnavailableError):
        return IngestRefusedError(STORAGE_FULL if error.full else STORAGE_UNAVAILABLE, str(error), retry=True)
    # Typically the file is locked by another process: worth a retry, not a lost batch.
    return IngestRefusedError(WRITE_FAILED, f"the spans were not stored: {error}", retry=True)


class PendingExport:
    """One request's spans, queued for the writer: `outcome()` once they are committed."""

    def __init__(self, pipeline: IngestPipeline, batch: NormalizedBatch, future: Future[InsertResult]):
        self._pipeline = pipeline
        self._batch = batch
        self._future = future

    def outcome(self) -> ExportOutcome:
        """Blocking: wait for the commit. Raises IngestRefusedError when the write failed."""
        try:
            result = self._future.result()
        except Exception as error:
            raise self._pipeline.failed(self._batch, error) from None
        return self._pipeline.committed(self._batch, result)

    async def outcome_async(self) -> ExportOutcome:
        """`outcome()` for an event loop; a cancelled wait cancels the queued write if it has not
        started (the sender, gone, was never told it was stored)."""
        try:
            result = await asyncio.wrap_future(self._future)
        except Exception as error:
            raise self._pipeline.failed(self._batch, error) from None
        return self._pipeline.committed(self._batch, result)


class IngestPipeline:
    """One per server: every transport's requests share its trace budget and its decoding turn.

    `on_committed` gets each request's spans once they are committed (the server evaluators'
    queue): it must return at once, as the response waits for it."""

    def __init__(
        self,
        store: Store,
        prices: PriceTable,
        limits: IngestLimits,
        on_committed: Callable[[Sequence[SpanRecord]], None] | None = None,
        metrics: IngestMetrics | None = None,
        pacing: ReadPacing | None = None,
        processes: DecodeProcesses | None = None,
    ) -> None:
        self.store = store
        self.prices = prices
        self.limits = limits
        self.on_committed = on_committed
        # Counts the spans of each request the writer answered; requests refused whole are
        # counted by their transport (`refused`).
        self.metrics = metrics
        self.budget = TraceBudget(store, limits.max_spans_per_trace)
        # Told of every request, so that big reads give way while spans arrive.
        self.pacing = pacing
        self._decoding = threading.Lock()
        # Where requests are decoded: these processes, or this one (None).
        self.processes = processes

    def submit(self, body: bytes, as_json: bool, projects: frozenset[str] | None) -> PendingExport:
        """Blocking (milliseconds of CPU per batch: call it off an event loop): decode, normalize,
        apply the key's scope (`projects`, None for all) and the trace budget, queue the write.
        Raises IngestRefusedError for a request refused whole."""
        if self.pacing is not None:
            self.pacing.ingest_busy()
        # Announced from the start of decoding: a store that gathers requests into one batch
        # can then wait for this one rather than write the one before it alone.
        with self.store.announce_write():
            return self._prepare_and_queue(body, as_json, projects)

    def _prepare_and_queue(
        self, body: bytes, as_json: bool, projects: frozenset[str] | None
    ) -> PendingExport:
        try:
            batch = self._decode(body, as_json)
        except UndecodableBodyError as error:
            raise IngestRefusedError(UNDECODABLE, str(error)) from None
        except TooManySpansError as error:
            raise IngestRefusedError(TOO_MANY_SPANS, str(error)) from None
        except TooManyValuesError as error:
            raise IngestRefusedError(TOO_MANY_VALUES, str(error)) from None
        except DecodeProcessesClosedError:
            raise IngestRefusedError("shutting_down", "the server is shutting down", retry=True) from None
        except DecodeProcessError as error:
            raise IngestRefusedError(DECODER_FAILED, str(error), retry=True) from None
        _scope_and_budget(batch, projects, self.budget)
        try:
            future = self.store.insert_spans(batch.spans, projects)
        except StoreBusyError:
            raise IngestRefusedError("busy", "the writer is saturated; retry later", retry=True) from None
        except StoreClosedError:
            raise IngestRefusedError("shutting_down", "the server is shutting down", retry=True) from None
        return PendingExport(self, batch, future)

    def _decode(self, body: bytes, as_json: bool) -> NormalizedBatch:
        if self.processes is not None:
            return self.processes.decode(body, as_json)
        # One decoded request at a time: decoding holds the GIL, so concurrent requests gain
        # nothing from overlapping here, and each decoded tree (up to the values budget) is
        # freed before the next one is built. The budget check is inside too: for JSON it
        # copies the body once (strings blanked), and four such copies at once were 50 MB.
        with self._decoding:
            return decode_request(body, as_json, self.prices, self.limits)

    def failed(self, batch: NormalizedBatch, error: Exception) -> IngestRefusedError:
        """Account for a write the storage failed (nothing of it stored): the refusal to answer."""
        refusal = _write_refusal(error)
        if self.metrics is not None:
            self.metrics.failed(batch.rejected_by, len(batch.spans), refusal.code)
        return refusal

    def refused(self, code: str) -> None:
        """Count a request refused whole (its transport calls this, or its error handler)."""
        if self.metrics is not None:
            self.metrics.refused(code)

    def committed(self, batch: NormalizedBatch, result: InsertResult) -> ExportOutcome:
        """Account for a committed write: the store's rejections, the trace budget, the hook."""
        if self.pacing is not None:
            self.pacing.ingest_busy()
        _count_rejected(batch, result.rejected, "; ".join(result.reasons), STORE_REFUSED)
        if self.metrics is not None:
            self.metrics.answered(batch.rejected_by, result.accepted)
        self.budget.committed(result.written)
        if self.on_committed is not None and result.written:
            self.on_committed(result.written)
        return ExportOutcome(batch.rejected, batch.error_message)
