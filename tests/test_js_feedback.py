"""The JavaScript package's logFeedback() and endSession() against a real spanloom server.

`js/e2e/feedback.mjs` traces a two-turn conversation from Node with the package's `register()`,
thumbs the first turn down before its span has ended (the feedback reaches the server first),
thumbs the second up twice under one id, gives feedback on the whole session and ends it; run
again with `turn`, it adds a turn that reopens the session. The server must count all of it on
the right turn, session and user, with a key scoped to the project, as it does for Python's
`log_feedback` (tests/server/test_feedback_sdk.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .js_kit import JS_DIR, app_with_package, ensure_built, load_server_kit, node, node_env

SCRIPT = JS_DIR / "e2e" / "feedback.mjs"
INGEST = "js-feedback-ingest-key-01234567"
READ = "js-feedback-read-key-0123456789"

pytestmark = pytest.mark.js


def run_script(server_url: str, mode: str) -> dict[str, Any]:
    run = subprocess.run(
        [node(), str(SCRIPT), server_url, INGEST, READ, mode],
        cwd=JS_DIR,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, f"node failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    assert "spanloom:" not in run.stderr, run.stderr  # no warning: nothing was refused or retried
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_feedback_and_session_end_from_node(tmp_path: Path) -> None:
    ensure_built()
    kit = load_server_kit()
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
    with kit.run_server(tmp_path / "spanloom.db", keys_file=keys) as server:

        def read(path: str, **params: Any) -> Any:
            response = server.client.get(path, params=params, headers={"Authorization": f"Bearer {READ}"})
            assert response.status_code == 200, response.text
            return response.json()

        done = run_script(server.url, "conversation")
        first, second = done["traceIds"]
        assert done["first"] == "js-fb-1"
        assert done["firstTraceStatusThen"] == 404  # the feedback was there before the turn
        assert done["second"] == ["js-fb-2", "js-fb-2"]
        assert len(done["session"]) == 32 and done["ended"] is True

        session = read("/api/sessions/js-conv")
        assert session["project"] == "shop" and session["user_id"] == "js-alice"
        assert session["status"] == "ended"
        assert session["evaluations"]["feedback"]["count"] == 3  # js-fb-2 once
        assert session["evaluations"]["feedback"]["pass_rate"] == pytest.approx(1 / 3)
        turns = {turn["trace_id"]: turn["evaluations"] for turn in session["turns"]}
        assert [(r["id"], r["score"], r["explanation"]) for r in turns[first]] == [
            ("js-fb-1", -1.0, "wrong order")
        ]
        assert [(r["id"], r["score"]) for r in turns[second]] == [("js-fb-2", 1.0)]
        assert [(r["id"], r["label"]) for r in session["results"]] == [(done["session"], "frustrated")]
        assert read("/api/users/js-alice")["evaluations"]["feedback"]["count"] == 3
        listed = read("/api/sessions", has_negative_feedback="true", status="ended")["items"]
        assert [s["session_id"] for s in listed] == ["js-conv"]
        assert [t["trace_id"] for t in read("/api/traces", has_negative_feedback="true")["items"]] == [first]

        run_script(server.url, "turn")
        reopened = read("/api/sessions/js-conv")
        assert reopened["status"] == "active" and reopened["trace_count"] == 3


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    ensure_built()
    readme = (JS_DIR / "README.md").read_text()
    section = readme[readme.index("## Feedback from your users") :]
    example = re.search(r"```js\n(.*?)```", section, flags=re.DOTALL)
    assert example is not None
    app = app_with_package(tmp_path / "app")
    (app / "feedback.mjs").write_text(example.group(1))
    kit = load_server_kit()
    with kit.run_server(tmp_path / "spanloom.db") as server:
        environment = {**node_env(), "SPANLOOM_ENDPOINT": server.traces_endpoint, "SPANLOOM_STRICT": "1"}
        run = subprocess.run(
            [node(), "feedback.mjs"], cwd=app, env=environment, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0 and "spanloom" not in run.stderr, f"{run.stdout}\n{run.stderr}"
        session = server.get_json("/api/sessions/conv-42", project="support-bot")
        assert session["status"] == "ended"
        assert session["evaluations"]["feedback"]["count"] == 2
        [turn] = session["turns"]
        thumbs = [(r["score"], r["explanation"]) for r in turn["evaluations"]]
        assert thumbs == [(-1.0, "It shipped last week")]
        assert [(r["label"], r["score"]) for r in session["results"]] == [("resolved", 1.0)]
        assert server.get_json("/api/users/alice")["evaluations"]["feedback"]["count"] == 2
