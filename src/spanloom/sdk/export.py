"""An exporter that keeps spans while the server is away and delivers them once it is back.

OpenTelemetry's OTLP exporter retries one batch for a few seconds and then drops it, so a
server restart of a minute loses every span made in that minute. `ResilientSpanExporter` wraps
it: a batch that could not be delivered waits in a bounded buffer, a background thread retries
with exponential backoff (the inner exporter itself honors ``Retry-After``), and new batches
queue behind the old ones so arrival order is kept. Memory stays bounded: past
`max_pending_spans` the oldest batches are dropped, counted and logged once with the count.

It runs on the BatchSpanProcessor's worker thread and its own retry thread, never on the
application's; while the server is known to be down, `export` returns at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from spanloom.sdk._guard import log_failure

logger = logging.getLogger("spanloom")

DEFAULT_MAX_PENDING_SPANS = 10_000
DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 5.0


class ResilientSpanExporter(SpanExporter):
    """Wraps `exporter`; undelivered batches wait (bounded) and are retried with backoff."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_pending_spans: int = DEFAULT_MAX_PENDING_SPANS,
        min_backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        shutdown_timeout_seconds: float = DEFAULT_SHUTDOWN_TIMEOUT_SECONDS,
    ) -> None:
        self.exporter = exporter
        self.max_pending_spans = max_pending_spans
        self._min_backoff = min_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._shutdown_timeout = shutdown_timeout_seconds
        self._pending: deque[Sequence[ReadableSpan]] = deque()
        self._pending_spans = 0
        self._lock = threading.Lock()  # guards _pending, _pending_spans, counters
        self._send_lock = threading.Lock()  # one sender at a time keeps batches in order
        self._backoff = min_backoff_seconds
        self._retry_at = 0.0  # time.monotonic() before which the server is taken to be down
        self._wake = threading.Event()
        self._retry_thread: threading.Thread | None = None
        self._closed = False
        self.dropped_spans = 0
        self.delivered_spans = 0
        self._drop_reported = False

    @property
    def pending_spans(self) -> int:
        return self._pending_spans

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        self._enqueue(spans)
        if time.monotonic() >= self._retry_at:
            self._send_pending()
        # The spans are ours now: delivered, or waiting for the retry thread.
        return SpanExportResult.SUCCESS

    def _enqueue(self, spans: Sequence[ReadableSpan]) -> None:
        with self._lock:
            self._pending.append(spans)
            self._pending_spans += len(spans)
            while self._pending_spans > self.max_pending_spans and len(self._pending) > 1:
                oldest = self._pending.popleft()
                self._pending_spans -= len(oldest)
                self.dropped_spans += len(oldest)
            dropped = self.dropped_spans
        if dropped and not self._drop_reported:
            self._drop_reported = True
            logger.warning(
                "spanloom: the trace server is unreachable and %d spans are waiting; dropped %d of the "
                "oldest to stay within max_pending_spans (reported once; the total is logged on recovery)",
                self.max_pending_spans,
                dropped,
            )

    def _send_pending(self, deadline: float | None = None) -> bool:
        """Send waiting batches oldest first; True when none is left. Stops at the first failure."""
        with self._send_lock:
            while True:
                with self._lock:
                    if not self._pending:
                        return True
                    batch = self._pending[0]
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                try:
                    delivered = self.exporter.export(batch) is SpanExportResult.SUCCESS
                except Exception:
                    log_failure("span export")
                    delivered = False
                if not delivered:
                    self._server_down()
                    return False
                with self._lock:
                    if self._pending and self._pending[0] is batch:
                        self._pending.popleft()
                        self._pending_spans -= len(batch)
                    self.delivered_spans += len(batch)
                self._server_up()

    def _server_down(self) -> None:
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self._max_backoff)
        self._start_retry_thread()

    def _server_up(self) -> None:
        if self._retry_at:
            self._retry_at = 0.0
            self._backoff = self._min_backoff
            if self.dropped_spans:
                logger.warning(
                    "spanloom: the trace server is reachable again; %d spans were dropped while it was not",
                    self.dropped_spans,
                )

    def _start_retry_thread(self) -> None:
        self._wake.set()
        if self._retry_thread is None and not self._closed:
            self._retry_thread = threading.Thread(
                target=self._retry_loop, name="spanloom-export-retry", daemon=True
            )
            self._retry_thread.start()

    def _retry_loop(self) -> None:
        while not self._closed:
            delay = self._retry_at - time.monotonic()
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                continue
            if self._pending_spans:
                self._send_pending()
            if not self._pending_spans:
                self._wake.wait()  # until the next failure sets a retry time
                self._wake.clear()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._send_pending(time.monotonic() + timeout_millis / 1000)

    def shutdown(self) -> None:
        """Deliver what is waiting within the shutdown timeout, then stop; never hangs the exit."""
        if self._closed:
            return
        delivered = self._send_pending(time.monotonic() + self._shutdown_timeout)
        self._closed = True
        self._wake.set()
        if not delivered and self._pending_spans:
            logger.warning(
                "spanloom: exiting with %d spans the trace server did not receive", self._pending_spans
            )
        self.exporter.shutdown()
