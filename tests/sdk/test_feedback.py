"""log_feedback() / end_session() on the SDK side: what is sent where, bad input, and a host app
that a missing or hanging server must not slow down or keep from exiting.

The server side (aggregates, ended sessions) is tested against a real server in
tests/server/test_feedback_sdk.py; here a loopback HTTP endpoint records the requests, and the
scenarios that end a process (exit flush, fork, a full queue) run in a process of their own.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

import spanloom
from spanloom import SpanloomWarning
from spanloom.sdk.destination import server_url

from ..conftest import Collector
from .warning_kit import spanloom_warning_files


def feedback_requests(collector: Collector) -> list[tuple[str, dict[str, str], list[dict]]]:
    return [(path, headers, json.loads(body or b"null")) for path, headers, body in collector.requests]


@pytest.fixture
def registered(collector: Collector) -> Iterator[Collector]:
    provider = spanloom.register(
        project_name="shop",
        endpoint=collector.base + "/v1/traces",
        headers={"Authorization": "Bearer k-shop"},
        batch=False,
        set_global_tracer_provider=False,
    )
    yield collector
    assert spanloom.flush_feedback(10)
    provider.shutdown()


def test_what_is_sent_and_where(registered: Collector, provider):
    with provider.get_tracer("t").start_as_current_span("answer") as span:
        trace_id = spanloom.current_trace_id()
        as_int = span.get_span_context().trace_id
    assert trace_id == format(as_int, "032x")
    assert spanloom.current_trace_id() is None  # outside any span
    given = spanloom.log_feedback(-1, "wrong", "It was the other order", trace_id=as_int, user_id="alice")
    assert spanloom.log_feedback(0.8, session_id="conv-1", id="fb-7", project="other") == "fb-7"
    assert spanloom.end_session("conv/1 ü") is True
    assert spanloom.flush_feedback(10)
    sent = feedback_requests(registered)
    items = [item for path, _, body in sent if path == "/api/feedback" for item in body]
    assert items == [
        {
            "score": -1.0,
            "label": "wrong",
            "user_id": "alice",
            "trace_id": trace_id,
            "comment": "It was the other order",
            "id": given,
            "project": "shop",
        },
        {"score": 0.8, "session_id": "conv-1", "id": "fb-7", "project": "other"},
    ]
    assert len(given or "") == 32  # a fresh id, so that a retry replaces instead of doubling
    assert [path for path, _, _ in sent][-1] == "/api/sessions/conv%2F1%20%C3%BC/end?project=shop"
    assert {headers["authorization"] for _, headers, _ in sent} == {"Bearer k-shop"}


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"score": 1}, ValueError),  # no target
        ({"score": 1, "trace_id": "a" * 32, "session_id": "s"}, ValueError),  # both targets
        ({"session_id": "s"}, ValueError),  # neither score nor label
        ({"score": "good", "session_id": "s"}, TypeError),
        ({"score": True, "session_id": "s"}, TypeError),
        ({"score": math.inf, "session_id": "s"}, TypeError),
        ({"score": 2e6, "session_id": "s"}, ValueError),
        ({"score": 1, "trace_id": "xyz"}, ValueError),
        ({"score": 1, "trace_id": 0}, ValueError),
        ({"score": 1, "trace_id": 1.5}, TypeError),
        ({"score": 1, "session_id": ""}, ValueError),
        ({"score": 1, "session_id": 42}, TypeError),
        ({"score": 1, "session_id": "s" * 257}, ValueError),
        ({"label": "", "session_id": "s"}, ValueError),
        ({"score": 1, "session_id": "s", "comment": 3}, TypeError),
        ({"score": 1, "session_id": "s", "user_id": ["alice"]}, TypeError),
        ({"score": 1, "session_id": "s", "id": " "}, ValueError),
    ],
)
def test_bad_input_warns_at_the_callers_line_and_sends_nothing(
    arguments, error, registered: Collector, monkeypatch
):
    monkeypatch.delenv("SPANLOOM_STRICT", raising=False)
    with pytest.warns(SpanloomWarning) as record:
        assert spanloom.log_feedback(**arguments) is None
    assert spanloom_warning_files(record) == {__file__}
    monkeypatch.setenv("SPANLOOM_STRICT", "1")
    with pytest.raises(error):
        spanloom.log_feedback(**arguments)
    assert spanloom.flush_feedback(10)
    assert registered.requests == []


@pytest.mark.parametrize(("session_id", "project"), [("", None), (None, None), ("s", ""), ("s", 5)])
def test_end_session_bad_input(session_id, project, registered: Collector, monkeypatch):
    monkeypatch.delenv("SPANLOOM_STRICT", raising=False)
    with pytest.warns(SpanloomWarning) as record:
        assert spanloom.end_session(session_id, project=project) is False
    assert spanloom_warning_files(record) == {__file__}
    monkeypatch.setenv("SPANLOOM_STRICT", "1")
    with pytest.raises((TypeError, ValueError)):
        spanloom.end_session(session_id, project=project)
    assert spanloom.flush_feedback(10)
    assert registered.requests == []


@pytest.mark.parametrize(
    ("endpoint", "server"),
    [
        ("http://127.0.0.1:4318/v1/traces", "http://127.0.0.1:4318"),
        ("https://traces.example/v1/traces/", "https://traces.example"),
        ("https://example.com/spanloom/v1/traces?x=1", "https://example.com/spanloom"),
        ("http://127.0.0.1:4318", "http://127.0.0.1:4318"),
        ("http://127.0.0.1:4318/", "http://127.0.0.1:4318"),
    ],
)
def test_the_server_behind_a_traces_endpoint(endpoint, server):
    assert server_url(endpoint) == server


def run_app(code: str, environment: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """`code` as a separate app: its exit (and the flush at exit) happens for real."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("SPANLOOM_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**clean, **environment},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_without_register_the_environment_names_the_server(collector: Collector):
    app = run_app(
        """
        import spanloom
        print(spanloom.log_feedback(1, session_id="s1"))
        """,  # no flush_feedback(): leaving the interpreter sends what is queued
        {
            "SPANLOOM_ENDPOINT": collector.base + "/mounted/v1/traces",
            "SPANLOOM_API_KEY": "env-key",
            "SPANLOOM_PROJECT": "from-env",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-team=search",
        },
    )
    assert app.returncode == 0, app.stderr
    [(path, headers, body)] = feedback_requests(collector)
    assert path == "/mounted/api/feedback"
    assert (headers["authorization"], headers["x-team"]) == ("Bearer env-key", "search")
    assert body == [{"score": 1.0, "session_id": "s1", "id": app.stdout.strip(), "project": "from-env"}]


@pytest.fixture
def hanging_server() -> Iterator[str]:
    """A server that accepts connections and never answers: the worst case for a caller that
    would wait on the network."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1/traces"
    finally:
        listener.close()


def test_a_hanging_server_neither_slows_the_app_nor_keeps_it_from_exiting(hanging_server: str):
    started = time.monotonic()
    app = run_app(
        """
        import os, time
        import spanloom
        spanloom.register(endpoint=os.environ["HANGING"], set_global_tracer_provider=False)
        started = time.monotonic()
        for number in range(200):
            spanloom.log_feedback(1, session_id=f"s{number}")
        spanloom.end_session("s0")
        print("app went on after", round(time.monotonic() - started, 3), "s")
        """,
        {"HANGING": hanging_server},
    )
    took = time.monotonic() - started
    assert app.returncode == 0, app.stderr
    # Each request would wait 10 s for an answer: 201 calls waiting on it would take half an hour.
    assert app.stdout.startswith("app went on after")
    assert float(app.stdout.split()[4]) < 5
    # At exit the queue gets 5 seconds, then the process ends, saying what it could not send.
    assert "exiting with 201 feedback and session ends the server did not receive" in app.stderr
    assert took < 40


def test_an_absent_server_is_reported_once(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = run_app(
        f"""
        import spanloom
        spanloom.register(endpoint="http://127.0.0.1:{port}/v1/traces", set_global_tracer_provider=False)
        for number in range(3):
            spanloom.log_feedback(-1, session_id="s", comment=str(number))
        print(spanloom.flush_feedback(1.5))
        """,
        {},
    )
    assert app.returncode == 0, app.stderr
    assert app.stdout.strip() == "False"
    assert app.stderr.count(f"cannot reach http://127.0.0.1:{port}/api/feedback") == 1


def test_a_full_queue_drops_new_feedback_with_a_warning(hanging_server: str):
    app = run_app(
        """
        import os
        import spanloom
        spanloom.register(endpoint=os.environ["HANGING"], set_global_tracer_provider=False)
        print([bool(spanloom.log_feedback(1, session_id="s")) for _ in range(6)])
        """,
        {"HANGING": hanging_server, "SPANLOOM_MAX_PENDING_FEEDBACK": "3"},
    )
    assert app.returncode == 0, app.stderr
    assert app.stdout.strip() == str([True] * 3 + [False] * 3)
    assert app.stderr.count("are waiting for the server (max_pending); dropped feedback") == 1
    assert "3 feedback and session ends were dropped: the queue was full" in app.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_worker_sends_its_own_feedback_and_exits_promptly(collector: Collector, hanging_server: str):
    app = run_app(
        """
        import os, sys, time, warnings
        import spanloom
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
        spanloom.register(endpoint=os.environ["HANGING"], set_global_tracer_provider=False)
        spanloom.log_feedback(1, session_id="parent")  # in flight to a server that never answers
        child = os.fork()
        if child == 0:
            spanloom.register(endpoint=os.environ["COLLECTOR"], set_global_tracer_provider=False)
            spanloom.log_feedback(1, session_id="child")
            sys.exit(0)  # a normal exit: the flush at exit sends the child's feedback only
        started = time.monotonic()
        _, status = os.waitpid(child, 0)
        print(os.waitstatus_to_exitcode(status), round(time.monotonic() - started, 3))
        """,
        {"HANGING": hanging_server, "COLLECTOR": collector.base + "/v1/traces"},
    )
    assert app.returncode == 0, app.stderr
    code, child_took = app.stdout.split()
    assert code == "0"
    assert float(child_took) < 4  # it did not wait out the parent's exit flush (5 s)
    assert app.stderr.count("exiting with 1 feedback") == 1, app.stderr  # the parent's, once
    sessions = [item["session_id"] for _, _, body in feedback_requests(collector) for item in body]
    assert sessions == ["child"]
