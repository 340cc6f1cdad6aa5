"""Running the configured evaluators: on new spans as they arrive, and over stored spans on demand.

On arrival, ingest hands each committed batch to `EvaluatorRunner.submit`, which keeps a slim
copy of the spans some evaluator applies to (what the built-ins read: ids, times, status, output)
on a bounded queue and returns: the OTLP 200 never waits for an evaluator. One background thread
judges the spans and writes the results through `Store.insert_evaluations`, one request at a
time, so evaluator writes never fill the writer's queue ahead of ingest.

Judging costs about as much CPU as ingesting (regular expressions over long answers, in the same
process and under the same GIL), so the thread runs at low priority: while spans keep arriving
(a submit in the last ACTIVE_WINDOW_SECONDS) it works in short chunks and pauses so that it takes
at most BUSY_SHARE of the time; when ingest is quiet it runs flat out and catches up. When the
queue is full (MAX_QUEUED_SPANS), new spans are dropped and counted (`dropped`): ingest speed
wins over completeness, and ``spanloom eval run`` fills any gap later.

The evaluators file is re-read when it changes (mtime and size), so ``spanloom evaluators add``
takes effect on a running server without a restart.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from spanloom.server.evaluators.builtin import EvaluatorOptionError
from spanloom.server.evaluators.config import ALL_PROJECTS, EvaluatorConfig, evaluate, load_configs
from spanloom.server.store.base import ListQuery, SpanRecord, Store, StoreBusyError
from spanloom.server.store.evaluation_types import EvaluationInput

logger = logging.getLogger(__name__)

MAX_QUEUED_SPANS = 50_000  # spans waiting to be judged before new ones are dropped
CHUNK_SPANS = 256  # judged and written at a time while ingest is busy: short bursts
MAX_RESULTS_PER_WRITE = 4096
BUSY_BACKOFF_SECONDS = 0.05
ACTIVE_WINDOW_SECONDS = 1.0
BUSY_SHARE = 0.03  # of wall time the evaluators may take while ingest is busy
MAX_PAUSE_SECONDS = 1.0
_STOP = None


def slim(span: SpanRecord) -> SpanRecord:
    """What the built-in evaluators read, without the attributes, input and events that make up
    most of a span's memory: the queue may hold many spans while ingest is busy."""
    return SpanRecord(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        name=span.name,
        project=span.project,
        start_time_ns=span.start_time_ns,
        end_time_ns=span.end_time_ns,
        span_kind=span.span_kind,
        status_code=span.status_code,
        status_message=span.status_message,
        model=span.model,
        output=span.output,
    )


def judge(
    configs: Iterable[EvaluatorConfig], spans: Iterable[SpanRecord], now_ns: int
) -> list[EvaluationInput]:
    """The results (source ``server``) of every configured evaluator that applies to each span."""
    configs = list(configs)
    results = []
    for span in spans:
        for name, verdict in evaluate(configs, span):
            results.append(
                EvaluationInput(
                    name=name,
                    source="server",
                    span_id=span.span_id,
                    trace_id=span.trace_id,
                    score=verdict.score,
                    label=verdict.label,
                    explanation=verdict.explanation,
                    time_ns=now_ns,
                )
            )
    return results


def write_results(store: Store, results: Sequence[EvaluationInput], stopping: Callable[[], bool]) -> int:
    """Write in chunks, waiting out a busy writer; returns how many were accepted."""
    accepted = 0
    for first in range(0, len(results), MAX_RESULTS_PER_WRITE):
        chunk = results[first : first + MAX_RESULTS_PER_WRITE]
        while True:
            try:
                future = store.insert_evaluations(chunk)
                break
            except StoreBusyError:
                if stopping():
                    return accepted
                time.sleep(BUSY_BACKOFF_SECONDS)  # a worker thread backing off, not a test waiting
        accepted += future.result().accepted
    return accepted


class ConfigFile:
    """The evaluators file, re-read when its mtime or size changes; a broken file counts as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._configs: list[EvaluatorConfig] = []
        # A coarse filter for the ingest path: the span kinds and projects any evaluator judges
        # (projects None: some evaluator takes every project). `judge` applies the exact rules.
        self.kinds: frozenset[str] = frozenset()
        self.projects: frozenset[str] | None = frozenset()

    def configs(self) -> list[EvaluatorConfig]:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._configs = load_configs(self.path) if stamp else []
            except (EvaluatorOptionError, OSError) as error:
                logger.warning("spanloom: ignoring the evaluators file %s: %s", self.path, error)
                self._configs = []
            self.kinds = frozenset(kind for config in self._configs for kind in config.span_kinds)
            every = any(config.project == ALL_PROJECTS for config in self._configs)
            self.projects = None if every else frozenset(config.project for config in self._configs)
        return self._configs


class EvaluatorRunner:
    def __init__(self, store: Store, config_path: Path, max_queued_spans: int = MAX_QUEUED_SPANS) -> None:
        self._store = store
        self._file = ConfigFile(config_path)
        self._queue: queue.SimpleQueue[list[SpanRecord] | None] = queue.SimpleQueue()
        self._max_queued = max_queued_spans
        self._queued = 0  # spans on the queue; only approximately guarded, as a bound needs no more
        self._stopping = False
        self._last_submit = 0.0
        self.dropped = 0  # spans not judged because the queue was full
        self.written = 0  # results accepted by the store
        self._thread = threading.Thread(target=self._run, name="spanloom-evaluators", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Spans waiting to be judged (for /metrics)."""
        return max(0, self._queued)

    def submit(self, spans: Sequence[SpanRecord]) -> None:
        """Queue committed spans for judging; never blocks (a full queue drops them)."""
        self._last_submit = time.monotonic()
        configs = self._file.configs()
        if self._stopping or not configs:
            return
        kinds, projects = self._file.kinds, self._file.projects
        wanted = [
            slim(span)
            for span in spans
            if span.span_kind in kinds and (projects is None or span.project in projects)
        ]
        if not wanted:
            return
        if self._queued + len(wanted) > self._max_queued:
            self.dropped += len(wanted)
            return
        self._queued += len(wanted)
        self._queue.put(wanted)

    def _busy(self) -> bool:
        return time.monotonic() - self._last_submit < ACTIVE_WINDOW_SECONDS

    def _run(self) -> None:
        pending: list[SpanRecord] = []
        stop = False
        while not (stop and not pending):
            if not pending:
                item = self._queue.get()
                if item is _STOP:
                    return
                pending = item
            # Everything already waiting, so that writes are few and large when ingest is quiet.
            while not stop and len(pending) < MAX_RESULTS_PER_WRITE:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                else:
                    pending.extend(item)
            busy = self._busy() and not self._stopping
            size = CHUNK_SPANS if busy else MAX_RESULTS_PER_WRITE
            chunk, pending = pending[:size], pending[size:]
            self._queued -= len(chunk)
            started = time.monotonic()
            try:
                results = judge(self._file.configs(), chunk, time.time_ns())
                self.written += write_results(self._store, results, lambda: self._stopping)
            except Exception:
                logger.exception("spanloom: server evaluators failed on %d spans", len(chunk))
            if busy:
                self._yield_to_ingest(time.monotonic() - started)

    def _yield_to_ingest(self, took: float) -> None:
        """Pause so that a chunk that took `took` seconds was BUSY_SHARE of the time, in short
        naps that end as soon as ingest goes quiet (or the runner is closing), and never longer
        than MAX_PAUSE_SECONDS: a write that waited behind a long ingest commit is not CPU."""
        until = time.monotonic() + min(took * (1 / BUSY_SHARE - 1), MAX_PAUSE_SECONDS)
        while self._busy() and not self._stopping and time.monotonic() < until:
            time.sleep(min(0.02, max(0.0, until - time.monotonic())))

    def close(self) -> None:
        """Judge what is queued, then stop. Call before closing the store."""
        if self._stopping:
            return
        self._stopping = True
        self._queue.put(_STOP)
        self._thread.join(timeout=30)


def run_on_stored(
    store: Store,
    configs: Sequence[EvaluatorConfig],
    query: ListQuery,
    on_progress: Callable[[int], None] | None = None,
    page_size: int = 500,
) -> tuple[int, int]:
    """Judge stored spans matching `query` (project, span kind, start range) page by page; returns
    (spans read, results written). `on_progress(n)` after each page of n spans."""
    query.limit = page_size
    query.cursor = None
    seen = written = 0
    while True:
        page = store.list_spans(query)
        results = judge(configs, page.items, time.time_ns())
        written += write_results(store, results, lambda: False)
        seen += len(page.items)
        if on_progress is not None:
            on_progress(len(page.items))
        if page.next_cursor is None:
            return seen, written
        query.cursor = page.next_cursor
