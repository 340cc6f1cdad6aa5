"""What the server's health and metrics endpoints ask a store: whether it takes a write now
(`check_ready`), its size and queue (`stats`), and the size of each committed write
(`observe_writes`). A probe for readiness keeps nothing; a closed store is not ready and says why."""

from __future__ import annotations

import threading

from contract_kit import WAIT_SECONDS, span, trace_id, write

from spanloom.server.store.base import ListQuery, Store
from spanloom.server.store.evaluation_types import EvaluationInput

TIMEOUT = 10.0


def test_an_open_store_is_ready(store: Store):
    readiness = store.check_ready(TIMEOUT)
    assert readiness.ready, readiness.reason
    assert readiness.reason == ""


def test_a_closed_store_is_not_ready_and_says_why(store: Store):
    store.close()
    readiness = store.check_ready(TIMEOUT)
    assert not readiness.ready
    assert readiness.reason.strip()


def test_readiness_probes_keep_nothing_and_writes_go_on(store: Store):
    for _ in range(5):
        assert store.check_ready(TIMEOUT).ready
    assert store.list_projects() == []
    assert store.count_spans(ListQuery()) == 0
    assert store.list_sessions(ListQuery()).items == []

    result = write(store, [span(1, 1, session_id="s1", user_id="u1"), span(1, 2, parent=1)])
    assert result.accepted == 2
    assert store.check_ready(TIMEOUT).ready
    assert store.count_spans(ListQuery()) == 2
    assert [project.name for project in store.list_projects()] == ["p1"]


def test_concurrent_readiness_checks_all_answer(store: Store):
    answers: list[bool] = []
    lock = threading.Lock()

    def check() -> None:
        ready = store.check_ready(TIMEOUT).ready
        with lock:
            answers.append(ready)

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT_SECONDS)
    assert answers == [True] * 8


def test_stats_show_the_size_on_disk_and_an_idle_queue(store: Store):
    empty = store.stats()
    assert empty.size_bytes > 0
    assert empty.queued_writes == 0
    text = "a realistic answer about a refund for damaged items " * 200
    for number in range(20):
        write(store, [span(number + 1, 1, session_id=f"s{number}", output=f"{number} {text}")])
    after = store.stats()
    assert after.size_bytes > empty.size_bytes
    assert after.queued_writes == 0  # every write above was waited for


def test_write_observers_hear_what_each_committed_write_accepted(store: Store):
    heard: list[int] = []
    store.observe_writes(heard.append)
    accepted = write(store, [span(1, 1), span(1, 2, parent=1), span(2, 1)]).accepted
    accepted += write(store, [span(3, 1)]).accepted
    evaluation = store.insert_evaluations(
        [EvaluationInput(name="helpful", source="api", trace_id=trace_id(1), score=1.0)]
    ).result(timeout=WAIT_SECONDS)
    accepted += evaluation.accepted
    assert accepted == 5
    # Heard before each future resolved.
    assert sum(heard) == accepted
    assert all(size > 0 for size in heard)
    assert store.check_ready(TIMEOUT).ready
    assert sum(heard) == accepted  # a probe is not a write
