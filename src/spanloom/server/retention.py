"""Retention, run by the server: every so often, delete what has expired, a batch at a time.

Expired means: a session whose last turn ended more than N days ago (it goes whole), and a trace
without a session that ended more than N days ago. N is `--retention-days` for every project,
or `--retention PROJECT=DAYS` for one. Each batch is one write of the store's queue, so ingest
waits at most one small batch; a short pause between batches lets queued writes through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from spanloom.server.store.base import Retention, RetentionResult, Store

logger = logging.getLogger(__name__)

DAY_NS = 86_400 * 10**9
BATCH = 200
# Between two batches of one pass: queued ingest goes first.
PAUSE_SECONDS = 0.01


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep: `default_days` for every project (None: forever), `days` per project."""

    default_days: int | None = None
    days: dict[str, int] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.default_days is not None or bool(self.days)

    def at(self, now_ns: int) -> Retention:
        """What has expired at `now_ns`."""
        return Retention(
            cutoffs={project: now_ns - days * DAY_NS for project, days in self.days.items()},
            default_cutoff=None if self.default_days is None else now_ns - self.default_days * DAY_NS,
        )


class RetentionRunner:
    """A daemon thread running a pass every `interval_seconds` (the first at start)."""

    def __init__(
        self,
        store: Store,
        policy: RetentionPolicy,
        interval_seconds: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.policy = policy
        self._interval = interval_seconds
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0  # completed passes, for tests and metrics
        self.deleted = RetentionResult()  # everything deleted since start, for metrics

    def run_once(self, now_ns: int | None = None) -> RetentionResult:
        """One pass: every expired session and trace at `now_ns` (default: the clock's now)."""
        retention = self.policy.at(now_ns if now_ns is not None else int(self._clock() * 1e9))
        total = RetentionResult()
        while not self._stopping.is_set():
            result = self._store.delete_expired(retention, BATCH).result()
            total.sessions += result.sessions
            total.traces += result.traces
            total.spans += result.spans
            self.deleted.sessions += result.sessions
            self.deleted.traces += result.traces
            self.deleted.spans += result.spans
            if not result.more:
                break
            time.sleep(PAUSE_SECONDS)
        self.passes += 1
        if total.traces:
            logger.info(
                "spanloom: retention deleted %d sessions, %d traces, %d spans",
                total.sessions,
                total.traces,
                total.spans,
            )
        return total

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:
                # Never let the thread die: the next pass tries again.
                logger.exception("spanloom: a retention pass failed")
            self._stopping.wait(self._interval)

    def start(self) -> None:
        if self.policy.active and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spanloom-retention", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
