"""Sends feedback and session ends to the server off the caller's thread.

`log_feedback()` runs in a web handler: it must not wait for the network, and a server that is
down or slow must cost the app nothing. So calls only append to a bounded queue; one daemon
thread sends what is queued (consecutive feedback to the same server goes in one request),
retrying with exponential backoff on connection errors, timeouts, 408, 429 and 5xx (a
``Retry-After`` is honored, up to the backoff's cap). Each feedback carries its id, so a retry
of a request the server had stored replaces it instead of counting twice. Past `max_pending`
waiting items new ones are dropped, with a warning. Requests the server refuses for what they
hold (4xx) are logged and not retried.

The HTTP client is `requests`, the library OpenTelemetry's OTLP exporter sends spans with: the
same proxy (HTTPS_PROXY...) and CA bundle (REQUESTS_CA_BUNDLE) settings reach both. It is
imported on the sender thread, so `import spanloom` does not load it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import requests

logger = logging.getLogger("spanloom")

DEFAULT_MAX_PENDING = 10_000
DEFAULT_REQUEST_TIMEOUT_SECONDS = 10.0
# Well under the server's limits for POST /api/feedback (1,000 items, 1 MiB).
MAX_BATCH_ITEMS = 100
MAX_BATCH_BYTES = 256 * 1024
_RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Outgoing(NamedTuple):
    """One thing to send: a feedback item (`payload`, merged with its neighbours into one POST)
    or a bodiless POST (the end of a session)."""

    url: str  # the full URL of the endpoint
    headers: Mapping[str, str]
    payload: dict[str, Any] | None
    what: str  # for log messages: "feedback 'fb-1'", "the end of session 's1'"
    size: int = 0  # the payload's JSON length, counted once when queued

    @classmethod
    def feedback(cls, url: str, headers: Mapping[str, str], item: dict[str, Any]) -> Outgoing:
        return cls(url, headers, item, f"feedback {item['id']!r}", len(json.dumps(item)))

    def joins(self, other: Outgoing) -> bool:
        return (
            self.payload is not None
            and other.payload is not None
            and other.url == self.url
            and other.headers == self.headers
        )


class FeedbackSender:
    """A bounded queue and the one thread that empties it; see the module's docstring."""

    def __init__(
        self,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
        min_backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self.max_pending = max_pending
        self._timeout = request_timeout_seconds
        self._min_backoff = min_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._queue: deque[Outgoing] = deque()
        self._in_flight = 0
        self._changed = threading.Condition()  # guards the queue, counters and the thread
        self._hurry = threading.Event()  # cuts a backoff short: flush() wants it tried now
        self._thread: threading.Thread | None = None
        self._closed = False
        self._reported: set[str] = set()
        self.delivered = 0
        self.dropped = 0
        self.refused = 0

    @property
    def pending(self) -> int:
        """Items queued or being sent."""
        with self._changed:
            return len(self._queue) + self._in_flight

    def submit(self, item: Outgoing) -> bool:
        """Queue `item`; False (and a warning) when the queue is full or the sender closed.
        Never blocks on the network."""
        with self._changed:
            if self._closed:
                return False
            if len(self._queue) + self._in_flight < self.max_pending:
                self._queue.append(item)
                self._start_thread()
                self._changed.notify_all()
                return True
            self.dropped += 1
        self._warn_once(
            "full",
            "spanloom: %d feedback and session ends are waiting for the server (max_pending); "
            "dropped %s (reported once; the total is logged at exit)",
            self.max_pending,
            item.what,
        )
        return False

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued is sent (or refused), at most `timeout` seconds; True when
        nothing is left. A sender waiting out a backoff tries once more right away."""
        deadline = time.monotonic() + max(timeout, 0.0)
        self._hurry.set()
        with self._changed:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush within `timeout`, then stop taking items; logs what was not delivered."""
        delivered = self.flush(timeout)
        with self._changed:
            self._closed = True
            left = len(self._queue) + self._in_flight
            self._changed.notify_all()
        self._hurry.set()
        if not delivered and left:
            logger.warning(
                "spanloom: exiting with %d feedback and session ends the server did not receive", left
            )
        if self.dropped:
            logger.warning(
                "spanloom: %d feedback and session ends were dropped: the queue was full", self.dropped
            )

    def forget_after_fork(self) -> None:
        """In a forked child: the queue and the thread are the parent's. Drop this copy's items
        without taking its lock (the parent's sender thread may have held it at the fork) and
        take no more."""
        self._changed = threading.Condition()
        self._queue = deque()
        self._in_flight = 0
        self._closed = True
        self._thread = None
        self.delivered = self.dropped = self.refused = 0

    # --- the sender thread ---

    def _start_thread(self) -> None:
        if self._thread is None:
            thread = threading.Thread(target=self._run, name="spanloom-feedback", daemon=True)
            thread.start()  # may raise at interpreter shutdown: submit()'s caller guards it
            self._thread = thread

    def _next_batch(self) -> list[Outgoing] | None:
        with self._changed:
            while not self._queue:
                if self._closed:
                    return None
                self._changed.wait()
            batch = [self._queue.popleft()]
            size = batch[0].size
            while (
                self._queue
                and len(batch) < MAX_BATCH_ITEMS
                and batch[0].joins(self._queue[0])
                and size + self._queue[0].size <= MAX_BATCH_BYTES
            ):
                size += self._queue[0].size
                batch.append(self._queue.popleft())
            self._in_flight = len(batch)
            return batch

    def _run(self) -> None:
        import requests  # here: `import spanloom` must stay light

        with requests.Session() as session:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                try:
                    self._deliver(session, batch)
                except Exception:
                    # A bug here must not kill the thread: the batch is lost, the next one goes.
                    logger.warning("spanloom: sending feedback failed", exc_info=True)
                with self._changed:
                    self._in_flight = 0
                    self._changed.notify_all()

    def _deliver(self, session: requests.Session, batch: list[Outgoing]) -> None:
        import requests

        first = batch[0]
        body = None
        if first.payload is not None:
            body = json.dumps([item.payload for item in batch]).encode()
        headers = {**first.headers, "Content-Type": "application/json", "Accept": "application/json"}
        backoff = self._min_backoff
        while True:
            wait: float = backoff
            try:
                response = session.post(first.url, data=body, headers=headers, timeout=self._timeout)
            except requests.RequestException as error:
                self._warn_once("unreachable", "spanloom: cannot reach %s (%s); retrying", first.url, error)
            else:
                if response.status_code not in _RETRIED_STATUSES:
                    self._settle(batch, response)
                    return
                wait = _retry_after(response) or backoff
                self._warn_once(
                    f"status {response.status_code}",
                    "spanloom: %s answered %d; retrying",
                    first.url,
                    response.status_code,
                )
            with self._changed:
                if self._closed:
                    return
            self._hurry.wait(min(wait, self._max_backoff))
            self._hurry.clear()
            backoff = min(backoff * 2, self._max_backoff)

    def _settle(self, batch: list[Outgoing], response: requests.Response) -> None:
        """Count what the server took and log what it refused, and why."""
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.ok:
            # Reachable again: a later outage is worth a warning of its own.
            self._reported.difference_update(
                {"unreachable", *(f"status {code}" for code in _RETRIED_STATUSES)}
            )
        if response.ok and response.status_code != 207:
            with self._changed:
                self.delivered += len(batch)
            return
        rejected = answer.get("rejected") if isinstance(answer, dict) else None
        if isinstance(rejected, list) and rejected:
            with self._changed:
                self.refused += len(rejected)
                self.delivered += len(batch) - len(rejected)
            for entry in rejected:
                index = entry.get("index") if isinstance(entry, dict) else None
                what = batch[index].what if isinstance(index, int) and 0 <= index < len(batch) else "feedback"
                logger.warning("spanloom: the server refused %s: %s", what, entry.get("reason"))
            return
        with self._changed:
            self.refused += len(batch)
        error = answer.get("error") if isinstance(answer, dict) else None
        message = error.get("message") if isinstance(error, dict) else response.text[:200]
        self._warn_once(
            f"refused {response.status_code} {message}",
            "spanloom: %s answered %d (%s): %s not stored (further refusals of this kind are not logged)",
            batch[0].url,
            response.status_code,
            message,
            batch[0].what if len(batch) == 1 else f"{len(batch)} feedback",
        )

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        if kind in self._reported:
            return
        self._reported.add(kind)
        logger.warning(message, *args)


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a numeric Retry-After header (the server sends seconds)."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
