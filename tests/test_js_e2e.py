"""End to end across languages: a Node front end's session reaches a Python back end by W3C baggage.

Also: the JavaScript quickstart in js/README.md runs as written and its span carries the ids.

`js/e2e/run.mjs` uses the JavaScript package (`js/`) to send a two-turn session to a real
spanloom server. Each turn is a span in Node plus a POST to the Python back end below, carrying
the ``traceparent`` and ``baggage`` headers (the script opts in with ``propagate: true``: the
helpers keep the ids inside the process by default, see js/test/baggage-http.test.mjs). The
back end extracts them and records its LLM span with spanloom's Python SDK (`register()`:
`SessionSpanProcessor` reads the ids from baggage). The session must then show both turns, each
with the Node span and the Python LLM span, all in the same session and user.

Needs Node and `js/node_modules` (`cd js && npm ci`): without them these tests fail, saying so;
`-m "not js"` leaves them out. `SPANLOOM_TEST_NODE` names another node executable to run them
with (`.ci/run` uses it for the oldest Node the package declares). A missing or stale `js/dist`
is rebuilt with `npm run build`.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from spanloom import register

from .js_kit import JS_DIR, app_with_package, ensure_built, load_server_kit, node_env
from .js_kit import node as node_executable

JS_README = JS_DIR / "README.md"
E2E_SCRIPT = JS_DIR / "e2e" / "run.mjs"
SESSION_ID = "js-e2e-session"
USER_ID = "js-e2e-user"
# What the front end sends: trace context and baggage, as the W3C propagators write them.
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])

pytestmark = pytest.mark.js


@contextmanager
def python_backend(traces_endpoint: str) -> Iterator[str]:
    """A tiny back end: POST /chat records an LLM span under the caller's trace context and baggage."""
    provider = register(
        project_name="js-e2e",
        endpoint=traces_endpoint,
        batch=False,  # exported (and committed by the server) before the response goes out
        set_global_tracer_provider=False,
    )
    tracer = provider.get_tracer("python-backend")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            parent = PROPAGATOR.extract({name.lower(): value for name, value in self.headers.items()})
            question = str(body.get("question", ""))
            answer = f"Answer to: {question}"
            with tracer.start_as_current_span("ChatCompletion", context=parent) as span:
                span.set_attributes(
                    {
                        "openinference.span.kind": "LLM",
                        "llm.model_name": "gpt-4o-mini",
                        "input.value": question,
                        "output.value": answer,
                        "llm.token_count.prompt": 12,
                        "llm.token_count.completion": 5,
                    }
                )
            payload = json.dumps({"answer": answer}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="python-backend", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        provider.shutdown()


def test_js_session_reaches_python_backend_through_baggage(tmp_path: Path) -> None:
    node = node_executable()
    ensure_built()
    kit = load_server_kit()

    with (
        kit.run_server(tmp_path / "spanloom.db") as server,
        python_backend(server.traces_endpoint) as backend,
    ):
        run = subprocess.run(
            [node, str(E2E_SCRIPT), server.url, backend, SESSION_ID, USER_ID],
            cwd=JS_DIR,
            env=node_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, f"node e2e failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
        trace_ids = json.loads(run.stdout.strip().splitlines()[-1])["traceIds"]
        assert len(trace_ids) == 2

        def session_complete() -> dict[str, Any] | None:
            response = server.get(f"/api/sessions/{SESSION_ID}")
            if response.status_code != 200:
                return None
            session = response.json()
            turns = session["turns"]
            if len(turns) == 2 and all(turn["span_count"] == 2 for turn in turns):
                return session
            return None

        session = kit.wait_for(session_complete, timeout=15, what="both turns with Node and Python spans")
        assert session["user_id"] == USER_ID
        assert session["trace_count"] == 2
        assert [turn["trace_id"] for turn in session["turns"]] == trace_ids
        assert [turn["input"] for turn in session["turns"]] == [
            "Where is my order A-1001?",
            "When will it arrive?",
        ]

        for trace_id in trace_ids:
            detail = server.get_json(f"/api/traces/{trace_id}")
            assert detail["session_id"] == SESSION_ID
            assert detail["user_id"] == USER_ID
            spans = {span["resource"]["telemetry.sdk.language"]: span for span in detail["spans"]}
            assert set(spans) == {"nodejs", "python"}
            node_span, python_span = spans["nodejs"], spans["python"]
            # The Python span is the Node span's child: the traceparent header made it across...
            assert python_span["parent_span_id"] == node_span["span_id"]
            assert python_span["span_kind"] == "LLM"
            # ...and it carries the ids itself, read from the baggage header by SessionSpanProcessor.
            for span in (node_span, python_span):
                assert span["attributes"]["session.id"] == SESSION_ID
                assert span["attributes"]["gen_ai.conversation.id"] == SESSION_ID
                assert span["attributes"]["user.id"] == USER_ID
                assert span["resource"]["project.name"] == "js-e2e"
            # metadata and tags stay in the Node process (they are not put in baggage)
            assert json.loads(node_span["attributes"]["metadata"])["turn"] in (1, 2)
            assert node_span["attributes"]["tag.tags"] == ["e2e"]
            assert "metadata" not in python_span["attributes"]


def test_js_readme_quickstart_runs_and_exports_ids(tmp_path: Path) -> None:
    node = node_executable()
    ensure_built()
    quickstart = re.findall(r"```js\n(.*?)```", JS_README.read_text(), flags=re.DOTALL)[0]
    app = app_with_package(tmp_path / "app")
    script = app / "quickstart.mjs"
    script.write_text(quickstart)
    kit = load_server_kit()
    with kit.run_server(tmp_path / "spanloom.db") as server:
        environment = {**node_env(), "SPANLOOM_ENDPOINT": server.traces_endpoint, "SPANLOOM_STRICT": "1"}
        run = subprocess.run(
            [node, str(script)], cwd=app, env=environment, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, f"quickstart failed:\n{run.stdout}\n{run.stderr}"
        session = kit.wait_for(
            lambda: (
                server.get("/api/sessions/conv-42").status_code == 200
                and server.get_json("/api/sessions/conv-42")
            ),
            what="the quickstart's session",
        )
        assert session["user_id"] == "alice"
        assert session["project"] == "support-bot"
        [turn] = session["turns"]
        [span] = server.get_json(f"/api/traces/{turn['trace_id']}")["spans"]
        assert span["name"] == "answer"
        assert span["attributes"]["session.id"] == "conv-42"
        assert span["attributes"]["user.id"] == "alice"
        assert json.loads(span["attributes"]["metadata"]) == {"plan": "pro"}
        assert span["attributes"]["tag.tags"] == ["beta"]


def test_node_unit_tests_pass() -> None:
    """The package's own `node --test` suite (seed snippets, await/timers, validation), so the
    README's one test command covers the JavaScript side too."""
    node = node_executable()
    ensure_built()
    result = subprocess.run(
        [node, "--test", "test/"], cwd=JS_DIR, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"^# fail 0$", result.stdout, flags=re.MULTILINE), result.stdout[-2000:]
