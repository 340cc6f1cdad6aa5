"""spanloom.log_feedback() and spanloom.end_session() against a real server: feedback from the
Python SDK lands on its turn, session and user and in their aggregates, also when it comes
before the spans; the same id twice counts once; ended sessions reopen with a later turn; a
server that comes back late still gets what was queued."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _server_kit import RunningServer, free_port, run_server, server_process
from opentelemetry.sdk.trace import TracerProvider

import spanloom
from spanloom import using_attributes

INGEST = "sdk-feedback-ingest-key-0123456"
READ = "sdk-feedback-read-key-012345678"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[RunningServer]:
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {"key": INGEST, "role": "ingest", "projects": ["shop"]},
                    {"key": READ, "role": "read", "projects": ["shop"]},
                ]
            }
        )
    )
    with run_server(tmp_path / "feedback.db", keys_file=keys) as server:
        yield server


@pytest.fixture
def provider(keyed: RunningServer) -> Iterator[TracerProvider]:
    """The app's tracing, as register() sets it up: feedback then goes to the same server, key
    and project. Spans are sent as they end, so a test knows when they are there."""
    tracer_provider = spanloom.register(
        project_name="shop",
        endpoint=keyed.traces_endpoint,
        headers=bearer(INGEST),
        batch=False,
        set_global_tracer_provider=False,
    )
    yield tracer_provider
    assert spanloom.flush_feedback(10), "feedback still queued at the end of the test"
    tracer_provider.shutdown()


def read(server: RunningServer, path: str, **params: Any) -> Any:
    response = server.client.get(path, params=params, headers=bearer(READ))
    assert response.status_code == 200, response.text
    return response.json()


def turn(provider: TracerProvider, session_id: str, user_id: str, question: str) -> str:
    """One turn of the app, traced; returns its trace id as a handler would hand it out."""
    tracer = provider.get_tracer("app")
    with (
        using_attributes(session_id=session_id, user_id=user_id),
        tracer.start_as_current_span("answer") as span,
    ):
        span.set_attribute("openinference.span.kind", "CHAIN")
        span.set_attribute("input.value", question)
        span.set_attribute("output.value", f"About {question}")
        trace_id = spanloom.current_trace_id()
    assert trace_id is not None
    return trace_id


def test_feedback_lands_on_its_turn_session_and_user(keyed: RunningServer, provider: TracerProvider):
    tracer = provider.get_tracer("app")
    with (
        using_attributes(session_id="conv", user_id="alice"),
        tracer.start_as_current_span("answer") as span,
    ):
        span.set_attribute("input.value", "Where is my order?")
        first = spanloom.current_trace_id()
        assert first == format(span.get_span_context().trace_id, "032x")
        # The user thumbs the answer down before the span has even ended (and been sent).
        assert spanloom.log_feedback(-1, comment="wrong order", trace_id=first, user_id="alice", id="fb-1")
        assert spanloom.flush_feedback(10)
        assert keyed.client.get(f"/api/traces/{first}", headers=bearer(READ)).status_code == 404
    second = turn(provider, "conv", "alice", "When will it arrive?")
    for _ in range(2):  # the same feedback sent twice (a retry, a double click) counts once
        assert spanloom.log_feedback(1, trace_id=second, user_id="alice", id="fb-2") == "fb-2"
    assert spanloom.log_feedback(-1, label="frustrated", session_id="conv", user_id="alice")
    happy = turn(provider, "happy", "bob", "Thanks!")
    assert spanloom.log_feedback(1, trace_id=happy, user_id="bob")
    assert spanloom.flush_feedback(10)

    session = read(keyed, "/api/sessions/conv")
    assert session["evaluations"]["feedback"]["count"] == 3
    assert session["evaluations"]["feedback"]["pass_rate"] == pytest.approx(1 / 3)
    turns = {t["trace_id"]: t["evaluations"] for t in session["turns"]}
    assert [(r["id"], r["score"], r["explanation"]) for r in turns[first]] == [("fb-1", -1.0, "wrong order")]
    assert [(r["id"], r["score"]) for r in turns[second]] == [("fb-2", 1.0)]
    [on_session] = session["results"]
    assert (on_session["label"], on_session["score"]) == ("frustrated", -1.0)
    assert on_session["source"] == "feedback"

    assert read(keyed, "/api/users/alice")["evaluations"]["feedback"]["count"] == 3
    assert read(keyed, "/api/users/bob")["evaluations"]["feedback"]["pass_rate"] == 1.0
    negative = read(keyed, "/api/sessions", has_negative_feedback="true")["items"]
    assert [s["session_id"] for s in negative] == ["conv"]
    worst_first = read(keyed, "/api/sessions", sort="feedback", order="asc")["items"]
    assert [s["session_id"] for s in worst_first] == ["conv", "happy"]
    best_first = read(keyed, "/api/users", sort="feedback", order="desc")["items"]
    assert [u["user_id"] for u in best_first] == ["bob", "alice"]
    assert [t["trace_id"] for t in read(keyed, "/api/traces", has_negative_feedback="true")["items"]] == [
        first
    ]


def test_ending_a_session_and_a_later_turn_reopening_it(keyed: RunningServer, provider: TracerProvider):
    turn(provider, "talk", "carol", "Cancel my order")
    assert spanloom.end_session("talk") is True
    assert spanloom.flush_feedback(10)
    assert read(keyed, "/api/sessions/talk")["status"] == "ended"
    assert [s["session_id"] for s in read(keyed, "/api/sessions", status="ended")["items"]] == ["talk"]
    turn(provider, "talk", "carol", "Actually, keep it")
    assert read(keyed, "/api/sessions/talk")["status"] == "active"


def test_feedback_on_a_session_not_there_yet_counts_once_it_is(
    keyed: RunningServer, provider: TracerProvider
):
    assert spanloom.log_feedback(1, label="solved", session_id="later", id="early")
    assert spanloom.flush_feedback(10)
    turn(provider, "later", "dave", "Hello")
    session = read(keyed, "/api/sessions/later")
    assert [(r["id"], r["label"]) for r in session["results"]] == [("early", "solved")]
    assert read(keyed, "/api/users/dave")["evaluations"]["feedback"]["count"] == 1


def test_what_the_server_refuses_is_logged_not_retried(
    keyed: RunningServer, provider: TracerProvider, caplog: pytest.LogCaptureFixture
):
    turn(provider, "conv", "alice", "Hello")
    # Registered with a read key, which cannot write: 403, logged with the server's reason.
    spanloom.register(
        project_name="shop",
        endpoint=keyed.traces_endpoint,
        headers=bearer(READ),
        batch=False,
        set_global_tracer_provider=False,
    ).shutdown()
    with caplog.at_level("WARNING", logger="spanloom"):
        assert spanloom.log_feedback(-1, session_id="conv")
        assert spanloom.flush_feedback(10)  # settled: refused, not waiting for a retry
    refusals = [record.getMessage() for record in caplog.records if "403" in record.getMessage()]
    assert len(refusals) == 1 and "this key may not write" in refusals[0], caplog.text
    assert "feedback" not in read(keyed, "/api/sessions/conv")["evaluations"]


def test_feedback_queued_while_the_server_is_down_arrives_when_it_is_up(tmp_path: Path):
    port = free_port()
    provider = spanloom.register(
        project_name="shop",
        endpoint=f"http://127.0.0.1:{port}/v1/traces",
        batch=False,
        set_global_tracer_provider=False,
    )
    try:
        assert spanloom.log_feedback(-1, label="gave up", session_id="outage", id="while-down")
        assert spanloom.flush_feedback(0.5) is False  # nobody there: still queued, and no hang
        with server_process(tmp_path / "late.db", port):
            assert spanloom.flush_feedback(30)
            turn(provider, "outage", "erin", "Is anyone there?")
            session = httpx.get(f"http://127.0.0.1:{port}/api/sessions/outage", timeout=10).json()
            assert [(r["id"], r["label"]) for r in session["results"]] == [("while-down", "gave up")]
            assert session["evaluations"]["feedback"]["count"] == 1
    finally:
        provider.shutdown()


def test_the_readme_example_runs_as_written(tmp_path: Path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Feedback from your users") :]
    example = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert example is not None
    script = tmp_path / "feedback_example.py"
    script.write_text(example.group(1))
    with run_server(tmp_path / "readme.db") as server:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SPANLOOM_", "OTEL_"))}
        environment = {**inherited, "SPANLOOM_ENDPOINT": server.traces_endpoint, "SPANLOOM_STRICT": "1"}
        run = subprocess.run(
            [sys.executable, str(script)], env=environment, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0 and "spanloom" not in run.stderr, run.stderr
        session = server.get_json("/api/sessions/conv-42", project="support-bot")
        assert session["status"] == "ended"
        assert session["evaluations"]["feedback"]["count"] == 2
        [turn_evaluations] = [t["evaluations"] for t in session["turns"]]
        assert [(r["score"], r["explanation"]) for r in turn_evaluations] == [(-1.0, "It shipped last week")]
        assert [(r["label"], r["score"]) for r in session["results"]] == [("resolved", 1.0)]
        assert server.get_json("/api/users/alice")["evaluations"]["feedback"]["count"] == 2
