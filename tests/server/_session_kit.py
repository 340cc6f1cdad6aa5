"""Helpers for the session evaluator tests: a server whose session evaluators run on a fake clock,
crafted conversations sent as OTLP, and waiting for the runner."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _server_kit import BASE_TIME_NS, RunningServer, make_request, make_turn, run_server, wait_for

from spanloom.server.evaluators.config import EvaluatorConfig, save_configs

HOUR_MS = 3_600_000
PROJECT = "support"


class FakeClock:
    """ "Now" for the session evaluators, moved by the test."""

    def __init__(self, now_ns: int = BASE_TIME_NS) -> None:
        self.now_ns = now_ns
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self.now_ns

    def set_ms(self, ms_after_base: float) -> None:
        with self._lock:
            self.now_ns = BASE_TIME_NS + int(ms_after_base * 1e6)


@contextmanager
def session_server(
    tmp_path: Path, *configs: EvaluatorConfig, clock: FakeClock, **app_options: Any
) -> Iterator[RunningServer]:
    file = tmp_path / "evaluators.json"
    save_configs(file, list(configs))
    with run_server(
        tmp_path / "sessions.db",
        evaluators_file=file,
        session_eval_interval_seconds=0.02,
        session_idle_seconds=1800,
        app_options={"clock": clock, **app_options},
    ) as server:
        yield server


def post_conversation(
    server: RunningServer,
    session_id: str,
    turns: list[dict[str, Any]],
    *,
    user: str = "ann",
    start_ms: float = 0,
    project: str = PROJECT,
) -> list[str]:
    """One turn a minute from `start_ms`: each dict holds make_turn's keywords (question, answer,
    error, extra...). Returns the turns' trace ids."""
    spans = []
    trace_ids = []
    for number, keywords in enumerate(turns):
        trace_id, turn_spans = make_turn(session_id, user, start_ms + number * 60_000, **keywords)
        trace_ids.append(trace_id.hex())
        spans.extend(turn_spans)
    response = server.post_spans(make_request(spans, {"project.name": project}))
    assert response.status_code == 200, response.text
    return trace_ids


def runner(server: RunningServer) -> Any:
    return server.app.state.session_evaluators


def full_pass(server: RunningServer) -> None:
    """Wait until the runner has made a whole pass that started after this call."""
    session_runner = runner(server)
    seen = session_runner.passes
    session_runner.wake()
    wait_for(lambda: session_runner.passes >= seen + 2, what="a full pass of the session evaluators")


def results(server: RunningServer, session_id: str, project: str = PROJECT) -> dict[str, dict[str, Any]]:
    """The session's results of the server's session evaluators, by name."""
    detail = server.get_json(f"/api/sessions/{session_id}", project=project)
    return {result["name"]: result for result in detail["results"] if result["source"] == "server"}


def wait_for_results(
    server: RunningServer, session_id: str, names: set[str], project: str = PROJECT
) -> dict[str, dict[str, Any]]:
    def ready() -> dict[str, dict[str, Any]] | None:
        found = results(server, session_id, project)
        return found if names <= set(found) else None

    return wait_for(ready, what=f"results {sorted(names)} on session {session_id}")
