"""Running the session evaluators: on sessions once they are done, and over stored ones on demand.

A session is done when it is ended (``end_session``, ``POST /api/sessions/{id}/end``, a span
marked ``session.ended``) or idle (no new turn for ``SPANLOOM_SESSION_IDLE_SECONDS``). A
background thread asks the store every ``SPANLOOM_SESSION_EVAL_INTERVAL`` seconds (less often in a
store so large that asking costs more than POLL_SHARE of a core) for the done sessions not judged
since their last turn (`Store.sessions_to_judge`, oldest first, POLL_SESSIONS at a time), reads each
one's transcript (its last MAX_TURNS turns, see transcript.py), runs the session evaluators of its
project, writes their results on the session (source ``server``; the same name replaces the
earlier result, so a reopened session judged again shows its new verdicts) and marks it judged as
of the end it was judged at (`Store.mark_judged_many`). A turn after that makes it due again. Sessions
of a project without session evaluators are marked judged with no result, so they never hold up
the others. Nothing runs while no session evaluator is configured at all; adding the first one
judges the sessions stored until then, oldest first (an llm_judge's daily_budget caps the cost).

Like the span runner, it yields to ingest: while spans keep arriving it works in small batches
and pauses so that its own CPU time (the thread's, not the time it waits for the writer or an
LLM endpoint) is at most BUSY_SHARE of the time. It writes one request at a time, two a batch (the
results, then the marks), so it never fills the writer's queue ahead of ingest.

An llm_judge call that failed for a reason that may pass (timeout, HTTP error, malformed answer,
a missing key variable) leaves a ``judge_error`` result on the session, and the session is not
marked judged: it is tried again after RETRY_BASE_SECONDS, doubling each time, and given up (marked
judged, the ``judge_error`` result staying) after MAX_ATTEMPTS attempts or when more than
MAX_DEFERRED sessions wait for a retry. That schedule lives in memory: after a restart the
sessions are still due and are tried at once. A spent daily budget is final for that session: its
``budget_exhausted`` result stays until the session is judged again (a new turn, or
``spanloom eval run --scope session``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spanloom.server.evaluators import llm_judge
from spanloom.server.evaluators.config import EvaluatorConfig, session_configs_for
from spanloom.server.evaluators.llm_judge import DailyBudget, JudgeFailure, LlmJudge
from spanloom.server.evaluators.runner import BUSY_BACKOFF_SECONDS, ConfigFile, write_results
from spanloom.server.evaluators.session_builtin import SESSION_BUILTINS, SessionVerdict
from spanloom.server.evaluators.transcript import Transcript, read_transcript
from spanloom.server.store.base import ListQuery, Store, StoreBusyError
from spanloom.server.store.evaluation_types import EvaluationInput

logger = logging.getLogger(__name__)

BATCH_SESSIONS = 50  # judged and written together while ingest is quiet
BUSY_BATCH_SESSIONS = 10  # while spans keep arriving: short bursts
# Asked for at once. Finding due sessions walks every idle session (the store keeps no list of
# the unjudged ones), so the runner asks rarely: a poll per batch made a backlog quadratic.
POLL_SESSIONS = 1000
POLL_SHARE = 0.02  # of a core the polls may take: a pass waits longer when its poll cost more
MAX_POLL_WAIT_SECONDS = 300.0
BUSY_SHARE = 0.03  # of wall time its CPU may take while ingest is busy (the span runner's share)
MAX_PAUSE_SECONDS = 2.0
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 60
MAX_RETRY_SECONDS = 3600
MAX_DEFERRED = 1000
DEFAULT_INTERVAL_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class DueSession:
    project: str
    session_id: str
    end_ns: int  # the session's last turn's end when it was found due: what it is marked judged at

    @property
    def key(self) -> tuple[str, str]:
        return self.project, self.session_id


@dataclass(slots=True)
class JudgeOutcome:
    judged: list[DueSession] = field(default_factory=list)  # marked judged
    failed: list[DueSession] = field(default_factory=list)  # a judge failed and may not next time: not marked
    results: int = 0  # results the store accepted
    missing: int = 0  # sessions no longer stored


def _result(
    config: EvaluatorConfig, transcript: Transcript, verdict: SessionVerdict | JudgeFailure, now_ns: int
) -> EvaluationInput:
    label: str | None
    turns: Sequence[int]
    if isinstance(verdict, JudgeFailure):
        score, label, explanation, turns = None, verdict.label, verdict.explanation, ()
    else:
        score, label, explanation, turns = verdict.score, verdict.label, verdict.explanation, verdict.turns
    # Stored as the pages and POST /api/evaluations name turns: numbers from 1, with each turn's
    # trace id in the same order (null for one the transcript did not read), so a turn on another
    # page of a long session still links to its trace.
    trace_ids = {turn.index: turn.trace_id for turn in transcript.turns}
    return EvaluationInput(
        name=config.name,
        source="server",
        session_id=transcript.session_id,
        project=transcript.project,
        score=score,
        label=label,
        explanation=explanation,
        time_ns=now_ns,
        details={
            "turns": [index + 1 for index in turns],
            "trace_ids": [trace_ids.get(index) for index in turns],
            "kind": config.kind,
        },
    )


class SessionJudge:
    """Reads, judges, writes and marks sessions; keeps the llm_judge clients and budgets between
    calls (a budget is per evaluator and project, for as long as the process runs)."""

    def __init__(
        self,
        store: Store,
        transport: Any = None,
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self._store = store
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._judges: dict[tuple[str, str], LlmJudge] = {}
        self._budgets: dict[tuple[str, str], DailyBudget] = {}
        self._lock = threading.Lock()

    def _llm(self, config: EvaluatorConfig) -> LlmJudge:
        key = (config.project, config.name)
        judge = self._judges.get(key)
        if judge is not None and judge.options == dict(config.options):
            return judge
        if judge is not None:
            judge.close()
        limit = int(config.options.get("daily_budget", llm_judge.DEFAULT_DAILY_BUDGET))
        budget = self._budgets.setdefault(key, DailyBudget(limit, self._clock))
        budget.limit = limit
        judge = LlmJudge(config.name, config.options, budget, self._transport, self._sleep)
        self._judges[key] = judge
        return judge

    def _forget_unconfigured(self, configs: Sequence[EvaluatorConfig]) -> None:
        configured = {(c.project, c.name) for c in configs if c.kind == llm_judge.KIND}
        for key in [key for key in self._judges if key not in configured]:
            self._judges.pop(key).close()

    def judge(
        self,
        configs: Sequence[EvaluatorConfig],
        due: Sequence[DueSession],
        give_up: Callable[[DueSession], bool] = lambda due: False,
        stopping: Callable[[], bool] = lambda: False,
        mark: bool = True,
    ) -> JudgeOutcome:
        """Judge these sessions with the session evaluators of their projects, write the results,
        and mark judged every session read, except those a judge failed on transiently (unless
        `give_up` says to mark them all the same). `mark` False: `configs` are not all the
        session evaluators (one run by name), so nothing is marked, and sessions none of them
        judges are left out."""
        with self._lock:  # one caller at a time: the clients and budgets are shared
            return self._judge(configs, due, give_up, stopping, mark)

    def _judge(
        self,
        configs: Sequence[EvaluatorConfig],
        due: Sequence[DueSession],
        give_up: Callable[[DueSession], bool],
        stopping: Callable[[], bool],
        mark: bool,
    ) -> JudgeOutcome:
        self._forget_unconfigured(configs)
        outcome = JudgeOutcome()
        by_project: dict[str, list[EvaluatorConfig]] = {}
        read: list[tuple[DueSession, Transcript | None, list[EvaluatorConfig]]] = []
        for session in due:
            applicable = by_project.get(session.project)
            if applicable is None:
                applicable = by_project[session.project] = session_configs_for(configs, session.project)
            if not applicable:
                if mark:
                    read.append((session, None, []))  # nothing judges it: marked all the same
                continue
            transcript = read_transcript(self._store, session.project, session.session_id)
            if transcript is None:
                outcome.missing += 1
                continue
            read.append((session, transcript, applicable))
        now = self._clock()
        results: list[EvaluationInput] = []
        failed: set[tuple[str, str]] = set()
        llm_work: dict[tuple[str, str], tuple[EvaluatorConfig, list[Transcript]]] = {}
        for _, transcript, applicable in read:
            if transcript is None:
                continue
            for config in applicable:
                if config.kind == llm_judge.KIND:
                    llm_work.setdefault((config.project, config.name), (config, []))[1].append(transcript)
                    continue
                try:
                    verdict: SessionVerdict = SESSION_BUILTINS[config.kind].judge(transcript, config.options)
                except Exception:  # a bug in a heuristic must not stop the others or the runner
                    logger.exception("spanloom: session evaluator %r failed", config.name)
                    continue
                results.append(_result(config, transcript, verdict, now))
        for config, transcripts in llm_work.values():
            if stopping():
                failed.update((t.project, t.session_id) for t in transcripts)
                continue
            for transcript, answer in zip(
                transcripts, self._llm(config).judge_many(transcripts), strict=True
            ):
                results.append(_result(config, transcript, answer, now))
                if isinstance(answer, JudgeFailure) and answer.transient:
                    failed.add((transcript.project, transcript.session_id))
        outcome.results = write_results(self._store, results, stopping)
        judged = []
        for session, _, _ in read:
            if session.key in failed and not give_up(session):
                outcome.failed.append(session)
            else:
                judged.append(session)
        if not mark or _mark(self._store, judged, stopping):
            outcome.judged = judged
        return outcome

    def close(self) -> None:
        with self._lock:
            for judge in self._judges.values():
                judge.close()
            self._judges.clear()


def _mark(store: Store, sessions: Sequence[DueSession], stopping: Callable[[], bool]) -> bool:
    """Mark judged as of the end each was found due at, in one write, waiting out a busy writer;
    False when stopping first."""
    if not sessions:
        return True
    marks = [(session.project, session.session_id, session.end_ns) for session in sessions]
    while True:
        try:
            future = store.mark_judged_many(marks)
            break
        except StoreBusyError:
            if stopping():
                return False
            time.sleep(BUSY_BACKOFF_SECONDS)  # a worker thread backing off, not a test waiting
    future.result()
    return True


def poll_wait(interval: float, poll_seconds: float) -> float:
    """Seconds until the next pass: the interval, or longer when a poll's CPU (`poll_seconds`, in
    a store of very many sessions) would otherwise take more than POLL_SHARE of a core."""
    return max(interval, min(poll_seconds / POLL_SHARE, MAX_POLL_WAIT_SECONDS))


@dataclass(slots=True)
class _Deferral:
    end_ns: int
    attempts: int
    next_try_ns: int


class SessionEvaluatorRunner:
    """The background thread. `clock` (ns since the epoch) says what "now" is for idleness and
    retries: injectable, so tests move time instead of waiting for it."""

    def __init__(
        self,
        store: Store,
        config_path: Path,
        idle_seconds: float,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        *,
        busy: Callable[[], bool] = lambda: False,
        clock: Callable[[], int] = time.time_ns,
        transport: Any = None,
    ) -> None:
        self.clock = clock
        self._store = store
        self._file = ConfigFile(config_path)
        self._idle_ns = int(idle_seconds * 10**9)
        self._interval = interval_seconds
        self._busy = busy
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._judge = SessionJudge(store, transport, lambda: self.clock(), self._stopping.wait)
        self._deferred: dict[tuple[str, str], _Deferral] = {}
        self._thread: threading.Thread | None = None
        self.passes = 0  # completed passes: tests wait for one to know the runner looked
        self.poll_seconds = 0.0  # this thread's CPU time in the last look for due sessions
        self.judged = 0  # sessions marked judged
        self.written = 0  # results accepted by the store

    def run_once(self) -> int:
        """Judge every session due now (skipping those waiting for a retry); returns how many
        were marked judged."""
        configs = [config for config in self._file.configs() if config.scope == "session"]
        judged = 0
        while configs and not self._stopping.is_set():
            now = self.clock()
            waiting = sum(1 for deferral in self._deferred.values() if deferral.next_try_ns > now)
            limit = POLL_SESSIONS + waiting
            started = time.thread_time()
            rows = self._store.sessions_to_judge(now - self._idle_ns, limit)
            self.poll_seconds = time.thread_time() - started
            ready = [DueSession(*row) for row in rows if not self._waits(DueSession(*row), now)]
            progressed = False
            position = 0
            while position < len(ready) and not self._stopping.is_set():
                busy = self._busy()
                batch = ready[position : position + (BUSY_BATCH_SESSIONS if busy else BATCH_SESSIONS)]
                position += len(batch)
                started = time.thread_time()
                outcome = self._judge.judge(
                    configs, batch, give_up=self._gives_up, stopping=self._stopping.is_set
                )
                self._note(outcome, now)
                judged += len(outcome.judged)
                self.judged += len(outcome.judged)
                self.written += outcome.results
                progressed = progressed or bool(outcome.judged or outcome.failed)
                if busy:
                    self._yield_to_ingest(time.thread_time() - started)
            # Fewer than asked for: that was every session due as of `now`; those due since
            # (new turns, time passing) are the next pass's. No progress: sessions gone
            # meanwhile, the next pass looks again.
            if len(rows) < limit or not progressed:
                break
        return judged

    def _waits(self, session: DueSession, now: int) -> bool:
        deferral = self._deferred.get(session.key)
        return deferral is not None and deferral.end_ns == session.end_ns and deferral.next_try_ns > now

    def _gives_up(self, session: DueSession) -> bool:
        deferral = self._deferred.get(session.key)
        if deferral is None or deferral.end_ns != session.end_ns:
            return len(self._deferred) >= MAX_DEFERRED
        return deferral.attempts + 1 >= MAX_ATTEMPTS

    def _note(self, outcome: JudgeOutcome, now: int) -> None:
        for session in outcome.judged:
            self._deferred.pop(session.key, None)
        for session in outcome.failed:
            before = self._deferred.get(session.key)
            attempts = before.attempts + 1 if before and before.end_ns == session.end_ns else 1
            delay = min(RETRY_BASE_SECONDS * 2 ** (attempts - 1), MAX_RETRY_SECONDS)
            self._deferred[session.key] = _Deferral(session.end_ns, attempts, now + delay * 10**9)

    def _yield_to_ingest(self, took: float) -> None:
        """Pause so that `took` seconds of this thread's CPU were BUSY_SHARE of the time, in short
        naps that end as soon as ingest goes quiet or the runner stops."""
        until = time.monotonic() + min(took * (1 / BUSY_SHARE - 1), MAX_PAUSE_SECONDS)
        while self._busy() and not self._stopping.is_set() and time.monotonic() < until:
            self._stopping.wait(min(0.02, max(0.0, until - time.monotonic())))

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:
                # Never let the thread die: the next pass tries again.
                logger.exception("spanloom: a session evaluators pass failed")
            self.passes += 1
            self._wake.wait(poll_wait(self._interval, self.poll_seconds))
            self._wake.clear()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spanloom-session-evaluators", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Run a pass now rather than at the end of the interval."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current write and stop. Call before closing the store."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._judge.close()


@dataclass(slots=True)
class StoredRun:
    """What `judge_stored` did."""

    seen: int = 0  # sessions listed
    active: int = 0  # left out: still active
    judged: int = 0
    failed: int = 0  # an llm_judge failed on them: not marked judged
    results: int = 0


def judge_stored(
    store: Store,
    configs: Iterable[EvaluatorConfig],
    query: ListQuery,
    idle_before_ns: int,
    judge: SessionJudge | None = None,
    on_progress: Callable[[StoredRun], None] | None = None,
    page_size: int = 200,
    mark: bool = True,
) -> StoredRun:
    """Judge the stored sessions `query` lists (project, time range) that are ended or idle,
    judged before or not (their results are replaced); active ones are left out. `mark`: as for
    `SessionJudge.judge` (False when `configs` are not all the session evaluators)."""
    configs = [config for config in configs if config.scope == "session"]
    owned = judge is None
    judge = judge or SessionJudge(store)
    run = StoredRun()
    query.limit, query.cursor, query.sort, query.order = page_size, None, "start_time", "asc"
    try:
        while True:
            page = store.list_sessions(query)
            run.seen += len(page.items)
            done = []
            for summary in page.items:
                if summary.status(idle_before_ns) == "active":
                    run.active += 1
                else:
                    done.append(DueSession(summary.project, summary.session_id, summary.end_time_ns))
            for first in range(0, len(done), BATCH_SESSIONS):
                outcome = judge.judge(configs, done[first : first + BATCH_SESSIONS], mark=mark)
                run.judged += len(outcome.judged)
                run.failed += len(outcome.failed)
                run.results += outcome.results
            if on_progress is not None:
                on_progress(run)
            if page.next_cursor is None:
                return run
            query.cursor = page.next_cursor
    finally:
        if owned:
            judge.close()
