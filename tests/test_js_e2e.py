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

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from spanloom import register

JS_DIR = Path(__file__).resolve().parent.parent / "js"
JS_README = JS_DIR / "README.md"
E2E_SCRIPT = JS_DIR / "e2e" / "run.mjs"
BUILT_ENTRY = JS_DIR / "dist" / "esm" / "index.js"
SESSION_ID = "js-e2e-session"
USER_ID = "js-e2e-user"
# What the front end sends: trace context and baggage, as the W3C propagators write them.
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])

pytestmark = pytest.mark.js


def _load_server_kit() -> ModuleType:
    """tests/server/_server_kit.py, the module the server tests import as `_server_kit`."""
    if "_server_kit" in sys.modules:
        return sys.modules["_server_kit"]
    spec = importlib.util.spec_from_file_location(
        "_server_kit", Path(__file__).parent / "server" / "_server_kit.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_server_kit"] = module
    spec.loader.exec_module(module)
    return module


def _node() -> str:
    """The node executable (SPANLOOM_TEST_NODE, else the one on PATH); fails when it or the JS
    install is missing."""
    node = os.environ.get("SPANLOOM_TEST_NODE") or shutil.which("node")
    if node is None:
        pytest.fail(
            'node is not on PATH: run .ci/prerequisites, or leave the JavaScript tests out with -m "not js"',
            pytrace=False,
        )
    if not (JS_DIR / "node_modules").is_dir():
        pytest.fail(
            "js/node_modules is missing: run `(cd js && npm ci && npm run build)`, or leave the"
            ' JavaScript tests out with -m "not js"',
            pytrace=False,
        )
    return node


def _ensure_built() -> None:
    """Build js/dist when it is missing or older than a source or config file."""
    sources = [*(JS_DIR / "src").rglob("*.ts"), *JS_DIR.glob("tsconfig*.json"), JS_DIR / "package.json"]
    newest_source = max(path.stat().st_mtime for path in sources)
    if BUILT_ENTRY.exists() and BUILT_ENTRY.stat().st_mtime >= newest_source:
        return
    npm = shutil.which("npm")
    assert npm is not None, "js/dist is missing or stale and npm is not on PATH to build it"
    build = subprocess.run(
        [npm, "run", "build"], cwd=JS_DIR, capture_output=True, text=True, timeout=120, check=False
    )
    assert build.returncode == 0, f"npm run build failed:\n{build.stdout}\n{build.stderr}"


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


def _node_env() -> dict[str, str]:
    """The environment without OTEL_* / SPANLOOM_* settings that would redirect or alter the export."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTEL_", "SPANLOOM_")) and name != "NODE_OPTIONS"
    }


def test_js_session_reaches_python_backend_through_baggage(tmp_path: Path, store_backend: str) -> None:
    node = _node()
    _ensure_built()
    kit = _load_server_kit()

    with (
        kit.run_server(tmp_path / "spanloom.db", backend=store_backend) as server,
        python_backend(server.traces_endpoint) as backend,
    ):
        run = subprocess.run(
            [node, str(E2E_SCRIPT), server.url, backend, SESSION_ID, USER_ID],
            cwd=JS_DIR,
            env=_node_env(),
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
    node = _node()
    _ensure_built()
    quickstart = re.findall(r"```js\n(.*?)```", JS_README.read_text(), flags=re.DOTALL)[0]
    app = tmp_path / "app"
    app.mkdir()
    script = app / "quickstart.mjs"
    script.write_text(quickstart)
    # The app's node_modules: the package and its dependencies, linked from js/.
    modules = app / "node_modules"
    modules.mkdir()
    (modules / "spanloom").symlink_to(JS_DIR, target_is_directory=True)
    (modules / "@opentelemetry").symlink_to(
        JS_DIR / "node_modules" / "@opentelemetry", target_is_directory=True
    )
    kit = _load_server_kit()
    with kit.run_server(tmp_path / "spanloom.db") as server:
        environment = {**_node_env(), "SPANLOOM_ENDPOINT": server.traces_endpoint, "SPANLOOM_STRICT": "1"}
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
    node = _node()
    _ensure_built()
    result = subprocess.run(
        [node, "--test", "test/"], cwd=JS_DIR, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"^# fail 0$", result.stdout, flags=re.MULTILINE), result.stdout[-2000:]
