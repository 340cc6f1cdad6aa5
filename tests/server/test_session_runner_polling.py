"""How the session runner looks for due sessions in a real SQLite store: a backlog is found with
one look per POLL_SESSIONS sessions, not one per batch (each look walks every idle session), and
a look that costs more waits longer before the next."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spanloom.server.evaluators import session_runner
from spanloom.server.evaluators.config import EvaluatorConfig, save_configs
from spanloom.server.evaluators.session_runner import SessionEvaluatorRunner, poll_wait
from spanloom.server.store.base import SpanRecord, Store
from spanloom.server.store.url import open_store


class CountingStore:
    """The store, counting the runner's looks for due sessions."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.polls = 0

    def sessions_to_judge(self, idle_before_ns: int, limit: int = 100) -> list[tuple[str, str, int]]:
        self.polls += 1
        return self._store.sessions_to_judge(idle_before_ns, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'polls.db'}")
    yield opened
    opened.close()


def idle_sessions(store: Store, count: int) -> None:
    day_ago = time.time_ns() - 86_400 * 10**9
    spans = [
        SpanRecord(
            f"{number:032x}", f"{number + 1:016x}", None, "turn",
            start_time_ns=day_ago + number * 10**6, end_time_ns=day_ago + number * 10**6 + 1000,
            span_kind="CHAIN", input=f"question number {number}", output="an answer",
            session_id=f"s-{number}", user_id="ann", project="shop",
        )
        for number in range(count)
    ]  # fmt: skip
    store.insert_spans(spans).result(timeout=30)


def run_pass(tmp_path: Path, store: Store) -> tuple[SessionEvaluatorRunner, CountingStore]:
    config = tmp_path / "evaluators.json"
    save_configs(config, [EvaluatorConfig("long", "turns_over", "*", {"n": 3}, scope="session")])
    counting = CountingStore(store)
    runner = SessionEvaluatorRunner(counting, config, idle_seconds=1800)  # type: ignore[arg-type]
    try:
        runner.run_once()
    finally:
        runner.stop()
    return runner, counting


def test_a_backlog_is_found_in_one_look(tmp_path: Path, store: Store):
    idle_sessions(store, 3 * session_runner.BATCH_SESSIONS - 30)
    runner, counting = run_pass(tmp_path, store)
    assert runner.judged == 3 * session_runner.BATCH_SESSIONS - 30 and counting.polls == 1
    assert store.sessions_to_judge(time.time_ns(), 10) == []


def test_a_full_look_is_followed_by_another(tmp_path: Path, store: Store, monkeypatch):
    monkeypatch.setattr(session_runner, "POLL_SESSIONS", 50)
    idle_sessions(store, 120)
    runner, counting = run_pass(tmp_path, store)
    # 50, 50, then 20: fewer than asked for, so every due session was seen.
    assert runner.judged == 120 and counting.polls == 3
    assert store.sessions_to_judge(time.time_ns(), 10) == []


def test_a_costly_look_waits_longer_up_to_a_bound():
    assert poll_wait(10, 0.001) == 10
    assert poll_wait(10, 1.0) == pytest.approx(1.0 / session_runner.POLL_SHARE)
    assert poll_wait(10, 3600) == session_runner.MAX_POLL_WAIT_SECONDS
