"""Evaluation results end to end: each way in (SDK event, API + client, server evaluators on arrival,
`spanloom eval run`), replacement, aggregates after late spans and late results, sorting by score,
the summary endpoint and the first failing turn."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _server_kit import (
    RunningServer,
    key_values,
    make_request,
    make_span,
    make_turn,
    new_span_id,
    new_trace_id,
    run_server,
    wait_for,
)
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import spanloom
from spanloom.cli import cli
from spanloom.client import SpanloomClient
from spanloom.server.evaluators.config import EvaluatorConfig, save_configs
from spanloom.server.store.base import ListQuery
from spanloom.server.store.evaluation_types import EvaluationInput


def post_turn(server: RunningServer, session: str | None, user: str | None, start_ms: float = 0, **kw: Any):
    trace_id, spans = make_turn(session, user, start_ms, **kw)
    assert server.post_spans(make_request(spans)).status_code == 200
    return trace_id.hex(), spans


def results(server: RunningServer, session_id: str) -> list[list[dict[str, Any]]]:
    return [turn["evaluations"] for turn in server.get_json(f"/api/sessions/{session_id}")["turns"]]


def session_item(server: RunningServer, session_id: str) -> dict[str, Any]:
    items = server.get_json("/api/sessions", limit=1000)["items"]
    return next(item for item in items if item["session_id"] == session_id)


def user_item(server: RunningServer, user_id: str) -> dict[str, Any]:
    return server.get_json(f"/api/users/{user_id}")


# --- 1. from code: the SDK's event, through the real exporter ---
@pytest.fixture
def provider(server: RunningServer) -> Iterator[TracerProvider]:
    tracer_provider = TracerProvider(resource=Resource.create({"project.name": "chat"}))
    tracer_provider.add_span_processor(spanloom.SessionSpanProcessor())
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.traces_endpoint)))
    yield tracer_provider
    tracer_provider.shutdown()


def test_sdk_event_becomes_a_result_with_its_span(server: RunningServer, provider: TracerProvider):
    tracer = spanloom.get_tracer("test", tracer_provider=provider)

    @tracer.chain
    def answer(question: str) -> str:
        spanloom.log_evaluation("helpfulness", score=0.25, explanation="vague answer")
        spanloom.log_evaluation("tone", label="polite")
        return "it depends"

    with spanloom.using_attributes(session_id="s-sdk", user_id="ann"):
        answer("how?")
        answer("why?")
    (first, second) = results(server, "s-sdk")
    by_name = {result["name"]: result for result in first}
    assert by_name["helpfulness"]["score"] == 0.25 and by_name["helpfulness"]["source"] == "sdk"
    assert by_name["helpfulness"]["explanation"] == "vague answer" and not by_name["helpfulness"]["passed"]
    assert by_name["tone"]["label"] == "polite" and by_name["tone"]["score"] is None
    assert len(second) == 2
    aggregates = session_item(server, "s-sdk")["evaluations"]
    assert aggregates["helpfulness"] == {"count": 2, "mean_score": 0.25, "pass_rate": 0.0}
    assert user_item(server, "ann")["evaluations"]["helpfulness"]["count"] == 2
    # A low score fails the turn: the first failing turn is the first one, though nothing errored.
    detail = server.get_json("/api/sessions/s-sdk")
    assert (
        detail["first_failing_turn"]["index"] == 0 and detail["first_failing_turn"]["reason"] == "evaluation"
    )


# --- 2. over HTTP, and the Python client ---
def test_api_accepts_known_spans_and_reports_the_rest(server: RunningServer):
    trace_id, spans = post_turn(server, "s-api", "bob")
    root_id, llm_id = spans[0].span_id.hex(), spans[1].span_id.hex()
    client = SpanloomClient(server.url)
    answer = client.log_evaluations(
        [
            {"span_id": llm_id, "name": "correctness", "score": 0.9, "explanation": "matches the docs"},
            {"trace_id": trace_id, "name": "resolved", "label": "yes"},  # the root span
            {"span_id": "ab" * 8, "name": "correctness", "score": 1},  # unknown span
            {"span_id": llm_id, "name": "no verdict"},  # malformed: neither score nor label
        ]
    )
    assert answer["accepted"] == 2
    assert [item["index"] for item in answer["rejected"]] == [2, 3]
    assert "no span" in answer["rejected"][0]["reason"]
    (turn,) = results(server, "s-api")
    assert {(r["name"], r["span_id"], r["source"]) for r in turn} == {
        ("correctness", llm_id, "api"),
        ("resolved", root_id, "api"),
    }
    # Statuses: 200 all stored, 207 some, 422 none; 400 for a body that is not a list.
    ok = server.client.post("/api/evaluations", json=[{"span_id": llm_id, "name": "x", "score": 1}])
    assert ok.status_code == 200 and ok.json() == {"accepted": 1, "rejected": []}
    some = server.client.post(
        "/api/evaluations",
        json={
            "evaluations": [
                {"span_id": llm_id, "name": "x", "score": 1},
                {"trace_id": "cd" * 16, "name": "x", "score": 1},
            ]
        },
    )
    assert some.status_code == 207 and some.json()["accepted"] == 1
    none = server.client.post("/api/evaluations", json=[{"trace_id": "cd" * 16, "name": "x", "score": 1}])
    assert none.status_code == 422 and none.json()["accepted"] == 0
    assert server.client.post("/api/evaluations", content=b"{nope").status_code == 400


def test_api_judges_whole_sessions(server: RunningServer):
    post_turn(server, "s-whole", "bob")
    post_turn(server, "s-whole", "bob", 100)
    answer = server.client.post(
        "/api/evaluations",
        json=[
            {
                "session_id": "s-whole",
                "name": "resolved",
                "label": "fail",
                "explanation": "asked twice",
                "details": {"turns": [1, 2]},
            },
            {"session_id": "nobody", "name": "resolved", "label": "pass"},
            {"session_id": "s-whole", "trace_id": "ab" * 16, "name": "x", "score": 1},  # two targets
            {"span_id": "ab" * 8, "name": "x", "score": 1, "details": {"turns": [1]}},  # not a session's
            {"session_id": "s-whole", "name": "x", "score": 1, "details": {"big": "x" * 20_000}},
        ],
    )
    assert answer.status_code == 207, answer.text
    assert [item["index"] for item in answer.json()["rejected"]] == [1, 2, 3, 4]
    session = server.get_json("/api/sessions/s-whole")
    assert [(r["name"], r["label"], r["details"]) for r in session["results"]] == [
        ("resolved", "fail", {"turns": [1, 2]})
    ]
    assert session["evaluations"]["resolved"]["pass_rate"] == 0


def test_scores_past_the_aggregates_range_are_refused_not_a_500(server: RunningServer):
    """Aggregates add scores up as integer micro-units: 1e308 once overflowed that and failed
    the write with a 500. Past ±1,000,000 the API refuses a score; an SDK event's is dropped."""
    _, spans = post_turn(server, "s-huge", "zoe")
    llm_id = spans[1].span_id.hex()
    refused = server.client.post("/api/evaluations", json=[{"span_id": llm_id, "name": "x", "score": 1e308}])
    assert refused.status_code == 422
    assert "within" in refused.json()["rejected"][0]["reason"]
    edge = server.client.post("/api/evaluations", json=[{"span_id": llm_id, "name": "x", "score": -1e6}])
    assert edge.status_code == 200
    event = make_span(
        new_trace_id(), new_span_id(), attributes={"session.id": "s-huge-event", "user.id": "zoe"}
    )
    added = event.events.add(name="evaluation", time_unix_nano=event.start_time_unix_nano)
    added.attributes.extend(
        key_values({"evaluation.name": "y", "evaluation.score": 1e300, "evaluation.label": "ok"})
    )
    assert server.post_spans(make_request([event])).status_code == 200
    (turn,) = results(server, "s-huge-event")
    assert [(r["name"], r["score"], r["label"]) for r in turn] == [("y", None, "ok")]
    assert server.client.get("/api/users/zoe").status_code == 200


def test_same_span_name_and_source_replaces(server: RunningServer):
    _, spans = post_turn(server, "s-replace", "cy")
    llm_id = spans[1].span_id.hex()
    client = SpanloomClient(server.url)
    client.log_evaluations([{"span_id": llm_id, "name": "helpfulness", "score": 0.2}])
    client.log_evaluations([{"span_id": llm_id, "name": "helpfulness", "score": 0.8, "explanation": "fixed"}])
    (turn,) = results(server, "s-replace")
    assert [(r["score"], r["explanation"]) for r in turn] == [(0.8, "fixed")]
    assert session_item(server, "s-replace")["evaluations"]["helpfulness"]["count"] == 1
    assert user_item(server, "cy")["evaluations"]["helpfulness"] == {
        "count": 1,
        "mean_score": 0.8,
        "pass_rate": 1.0,
    }
    # Another source on the same span is another result, not a replacement.
    server.store.insert_evaluations(
        [EvaluationInput(name="helpfulness", source="server", span_id=llm_id, score=0.4)]
    ).result()
    assert session_item(server, "s-replace")["evaluations"]["helpfulness"]["count"] == 2


def test_client_never_loads_the_server():
    # httpx sends (a dependency already); the server's stack, the CLI and the DataFrame libraries
    # (loaded by to_pandas()/to_polars() only) stay out.
    code = (
        "import sys, spanloom.client\n"
        "heavy = {'fastapi', 'starlette', 'uvicorn', 'jinja2', 'sqlite3', 'requests', 'pandas', 'polars'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or m.startswith('spanloom.server') or m == 'spanloom.cli'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# --- 3. by the server: on arrival, and on demand ---
def write_evaluators(path: Path, *configs: EvaluatorConfig) -> Path:
    save_configs(path, list(configs))
    return path


def test_server_evaluators_judge_new_llm_spans(tmp_path: Path):
    file = write_evaluators(
        tmp_path / "evaluators.json",
        EvaluatorConfig("fast", "latency", "test", {"threshold_ms": 30}),
        EvaluatorConfig("no_pii", "contains_pii", "*", span_kinds=("CHAIN",)),
        EvaluatorConfig("elsewhere", "error", "another-project"),
    )
    with run_server(tmp_path / "db.sqlite", evaluators_file=file) as server:
        post_turn(server, "s-auto", "dee", duration_ms=20, answer="mail ann@example.com")  # LLM span 10 ms
        post_turn(server, "s-auto", "dee", 1000, duration_ms=200, answer="all fine")  # LLM span 100 ms

        def judged() -> list[list[dict[str, Any]]] | None:
            found = results(server, "s-auto")
            return found if all(len(turn) == 2 for turn in found) else None

        first, second = wait_for(judged, what="the server evaluators' results")
        verdicts = [{r["name"]: (r["label"], r["source"]) for r in turn} for turn in (first, second)]
        assert verdicts[0] == {"fast": ("pass", "server"), "no_pii": ("fail", "server")}
        assert verdicts[1] == {"fast": ("fail", "server"), "no_pii": ("pass", "server")}
        assert session_item(server, "s-auto")["evaluations"]["fast"]["pass_rate"] == 0.5


def test_eval_run_cli_judges_stored_spans_with_progress(tmp_path: Path):
    db = tmp_path / "db.sqlite"
    with run_server(db) as server:
        outputs = [
            '{"ok": true}',
            "{broken",
            "I'm sorry, but I can't help with that.",
            "x" * 50,
            "call +1 415 555 0132",
        ]
        for index, output in enumerate(outputs):
            _, spans = make_turn(f"s-{index}", "eve", index * 1000)
            spans[1].attributes.add(key="output.value").value.string_value = output
            spans[1].attributes.add(key="llm.output_messages.0.message.content").value.string_value = output
            assert server.post_spans(make_request(spans)).status_code == 200
        before = server.store.count_spans(ListQuery(project="test", span_kind="LLM"))
        assert before == len(outputs)
    runner = CliRunner()
    file = tmp_path / "evaluators.json"
    kinds = {
        "json": ("json_valid", []),
        "refuses": ("refusal", []),
        "short": ("length", ["--option", "max_chars=20"]),
        "pii": ("contains_pii", []),
        "no_sorry": ("regex", ["--option", "pattern=(?i)sorry", "--option", "mode=not_match"]),
        "ok_status": ("error", []),
        "quick": ("latency", ["--option", "threshold_ms=1000"]),
    }
    for name, (kind, options) in kinds.items():
        added = runner.invoke(
            cli,
            ["evaluators", "add", name, "--kind", kind, "--project", "test", "--file", str(file), *options],
        )
        assert added.exit_code == 0, added.output
    listed = runner.invoke(cli, ["evaluators", "list", "--file", str(file), "--db", str(db)])
    assert listed.exit_code == 0 and "refusal" in listed.output and "threshold_ms=1000" in listed.output
    for name in kinds:
        ran = runner.invoke(
            cli,
            [
                "eval",
                "run",
                "--project",
                "test",
                "--evaluator",
                name,
                "--since",
                "2020-01-01",
                "--db",
                str(db),
                "--file",
                str(file),
            ],
        )
        assert ran.exit_code == 0, ran.output
        # click draws the bar itself on a terminal; without one (here) it prints its label once.
        assert ran.output.startswith(f"Evaluating {name}")
        assert f"judged {len(outputs)} spans" in ran.output
    removed = runner.invoke(cli, ["evaluators", "remove", "quick", "--project", "test", "--file", str(file)])
    assert (
        removed.exit_code == 0
        and "quick" not in runner.invoke(cli, ["evaluators", "list", "--file", str(file)]).output
    )
    with run_server(db) as server:
        labels = [{r["name"]: r["label"] for r in results(server, f"s-{i}")[0]} for i in range(len(outputs))]
    passed = {name: [turn[name] == "pass" for turn in labels] for name in kinds}
    assert passed["json"] == [True, False, False, False, False]
    assert passed["refuses"] == [True, True, False, True, True]
    assert passed["short"] == [True, True, False, False, True]
    assert passed["pii"] == [True, True, True, True, False]
    assert passed["no_sorry"] == [True, True, False, True, True]
    assert passed["ok_status"] == [True] * 5 and passed["quick"] == [True] * 5


# --- aggregates stay right after late spans and late results ---
def test_aggregates_follow_a_trace_to_its_late_root_session(server: RunningServer):
    trace_id, root_id, child_id = new_trace_id(), new_span_id(), new_span_id()
    child = make_span(
        trace_id,
        child_id,
        root_id,
        "llm",
        1,
        5,
        {"openinference.span.kind": "LLM", "session.id": "early", "user.id": "u-early"},
    )
    assert server.post_spans(make_request([child])).status_code == 200
    SpanloomClient(server.url).log_evaluations([{"span_id": child_id.hex(), "name": "q", "score": 0.3}])
    assert session_item(server, "early")["evaluations"] == {
        "q": {"count": 1, "mean_score": 0.3, "pass_rate": 0.0}
    }
    # The root arrives late, naming another session and user: the result moves with the trace.
    root = make_span(trace_id, root_id, b"", "turn", 0, 10, {"session.id": "late", "user.id": "u-late"})
    assert server.post_spans(make_request([root])).status_code == 200
    assert all(item["session_id"] != "early" for item in server.get_json("/api/sessions")["items"])
    assert session_item(server, "late")["evaluations"]["q"]["count"] == 1
    assert server.get("/api/users/u-early").status_code == 404
    assert user_item(server, "u-late")["evaluations"] == {
        "q": {"count": 1, "mean_score": 0.3, "pass_rate": 0.0}
    }
    # A late result on the same trace joins the new owners.
    SpanloomClient(server.url).log_evaluations([{"trace_id": trace_id.hex(), "name": "q", "score": 0.9}])
    assert session_item(server, "late")["evaluations"]["q"] == {
        "count": 2,
        "mean_score": 0.6,
        "pass_rate": 0.5,
    }
    assert user_item(server, "u-late")["evaluations"]["q"]["mean_score"] == pytest.approx(0.6)


def test_rollups_equal_a_recount_after_any_arrival_order(server: RunningServer):
    client = SpanloomClient(server.url)
    traces = []
    for index in range(6):
        trace_id, spans = make_turn(
            f"s-{index % 2}", f"u-{index % 3}", index * 100, ids_on_child_only=index % 2 == 0
        )
        traces.append((trace_id, spans))
    # Children first with results, then roots (some naming other ids), then more results.
    for trace_id, spans in traces:
        assert server.post_spans(make_request([spans[1]])).status_code == 200
        client.log_evaluations(
            [
                {
                    "span_id": spans[1].span_id.hex(),
                    "trace_id": trace_id.hex(),
                    "name": "h",
                    "score": 0.1 * len(traces),
                }
            ]
        )
    for trace_id, spans in traces:
        assert server.post_spans(make_request([spans[0]])).status_code == 200
        client.log_evaluations(
            [{"trace_id": trace_id.hex(), "name": "h", "label": "fail" if trace_id[0] % 2 else "pass"}]
        )
    for _, spans in traces:
        assert server.post_spans(make_request(spans)).status_code == 200  # a retried export: no change
    expected: dict[tuple[str, str], list[Any]] = {}
    for trace_id, _ in traces:
        trace = server.get_json(f"/api/traces/{trace_id.hex()}")
        for result in trace["evaluations"]:
            for key in (("session", trace["session_id"]), ("user", trace["user_id"])):
                expected.setdefault(key, []).append(result)
    for (kind, key), found in expected.items():
        item = session_item(server, key) if kind == "session" else user_item(server, key)
        scores = [r["score"] for r in found if r["score"] is not None]
        assert item["evaluations"]["h"]["count"] == len(found)
        assert item["evaluations"]["h"]["mean_score"] == pytest.approx(sum(scores) / len(scores))
        assert item["evaluations"]["h"]["pass_rate"] == pytest.approx(
            sum(r["passed"] for r in found) / len(found)
        )


# --- sorting and the summary ---
def test_sort_sessions_and_users_by_mean_score(server: RunningServer):
    client = SpanloomClient(server.url)
    scores = {"s-a": 0.9, "s-b": 0.1, "s-c": 0.5}
    for index, (session, score) in enumerate(scores.items()):
        trace_id, _ = post_turn(server, session, f"user-{session}", index * 100)
        client.log_evaluations([{"trace_id": trace_id, "name": "helpful ness", "score": score}])
    post_turn(server, "s-none", "user-none", 500)  # no result: last in either order
    ascending = server.get_json("/api/sessions", sort="eval:helpful ness", order="asc")["items"]
    assert [item["session_id"] for item in ascending] == ["s-b", "s-c", "s-a", "s-none"]
    descending = server.get_json("/api/sessions", sort="eval:helpful ness", order="desc")["items"]
    assert [item["session_id"] for item in descending] == ["s-a", "s-c", "s-b", "s-none"]
    # Paged with a cursor, one row at a time, the same order.
    seen, cursor = [], None
    while True:
        params = {
            "sort": "eval:helpful ness",
            "order": "asc",
            "limit": 1,
            **({"cursor": cursor} if cursor else {}),
        }
        page = server.get_json("/api/sessions", **params)
        seen += [item["session_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["s-b", "s-c", "s-a", "s-none"]
    users = server.get_json("/api/users", sort="eval:helpful ness", order="asc")["items"]
    assert [item["user_id"] for item in users] == ["user-s-b", "user-s-c", "user-s-a", "user-none"]
    assert server.get("/api/sessions", sort="eval:").status_code == 400
    assert server.get("/api/traces", sort="eval:x").status_code == 400  # traces keep no aggregate
    # A name that looks like SQL is just a name (bound as a parameter).
    assert server.get_json("/api/sessions", sort="eval:x') OR 1=1 --")["items"][0]["session_id"]
    rates = server.get_json("/api/users", sort="error_rate")["items"]
    assert len(rates) == 4


def test_summary_by_session_user_and_project(server: RunningServer):
    client = SpanloomClient(server.url)
    for index, (session, user, score) in enumerate([("s1", "u1", 0.2), ("s1", "u1", 0.6), ("s2", "u2", 1.0)]):
        trace_id, _ = post_turn(server, session, user, index * 100)
        client.log_evaluations([{"trace_id": trace_id, "name": "helpfulness", "score": score}])
        client.log_evaluations([{"trace_id": trace_id, "name": "safe", "label": "safe"}])
    by_session = server.get_json("/api/evaluations/summary", group_by="session", name="helpfulness")["items"]
    assert [(row["session_id"], row["count"], row["pass_rate"]) for row in by_session] == [
        ("s1", 2, 0.5),
        ("s2", 1, 1.0),
    ]
    assert by_session[0]["mean_score"] == pytest.approx(0.4)
    assert by_session[0]["worst"]["score"] == 0.2
    by_user = server.get_json("/api/evaluations/summary", group_by="user", project="test")["items"]
    assert {(row["user_id"], row["name"]) for row in by_user} == {
        ("u1", "helpfulness"),
        ("u2", "helpfulness"),
        ("u1", "safe"),
        ("u2", "safe"),
    }
    assert by_user[0]["user_id"] == "u1" and by_user[0]["worst"]["score"] == 0.2
    by_project = server.get_json("/api/evaluations/summary", group_by="project", name="safe")["items"]
    assert by_project == [
        {
            "project": "test",
            "name": "safe",
            "count": 3,
            "mean_score": None,
            "pass_rate": 1.0,
            "worst": by_project[0]["worst"],
        }
    ]
    assert server.get("/api/evaluations/summary", group_by="model").status_code == 400


def test_dashboard_shows_columns_badges_and_comparison(server: RunningServer):
    trace_id, _ = post_turn(server, "s-page", "pat")
    SpanloomClient(server.url).log_evaluations(
        [{"trace_id": trace_id, "name": "<b>help</b>", "score": 0.3, "explanation": "<script>x</script>"}]
    )
    sessions = server.get("/sessions").text
    assert "&lt;b&gt;help&lt;/b&gt;" in sessions and "<b>help</b>" not in sessions and "0.30" in sessions
    page = server.get("/sessions/s-page").text
    assert 'class="eval bad"' in page and "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    assert "failed evaluation" in page
    users = server.get("/users").text
    assert "0.30" in users
    compare = server.get("/users/compare").text
    assert "Compare users by evaluation" in compare and "pat" in compare
    assert json.loads(server.get("/api/users/pat").text)["evaluations"]["<b>help</b>"]["count"] == 1
