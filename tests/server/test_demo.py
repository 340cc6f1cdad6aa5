"""`spanloom demo` into a real server: a believable day of sessions, users, tool calls, errors
that fit their durations, feedback, evaluations and ended conversations, the same for a seed."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import datetime, timedelta, timezone

from _server_kit import RunningServer
from click.testing import CliRunner

from spanloom.cli import cli
from spanloom.demo import EVALUATION, FRUSTRATED, build_conversations

HOUR = timedelta(hours=1)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _failing_turns(conversations) -> int:
    return sum(turn.tool_fails for conversation in conversations for turn in conversation.turns)


def test_demo_fills_the_server(server: RunningServer):
    result = CliRunner().invoke(
        cli, ["demo", "--endpoint", server.traces_endpoint, "--sessions", "6", "--users", "3"]
    )
    assert result.exit_code == 0, result.output
    # It says where to look.
    assert f"open {server.url}/sessions?project=demo" in result.output
    sessions = server.get_json("/api/sessions", project="demo")["items"]
    assert len(sessions) == 6
    assert len(server.get_json("/api/users")["items"]) <= 3
    expected = build_conversations(sessions=6, users=3)
    assert sum(s["error_count"] for s in sessions) == _failing_turns(expected) >= 1
    # A conversation whose every turn failed before the model was called has no tokens.
    answered = {c.session_id for c in expected if not all(turn.tool_fails for turn in c.turns)}
    assert all(s["first_input"] for s in sessions)
    assert all(s["total_tokens"] > 0 and s["cost"] > 0 for s in sessions if s["session_id"] in answered)
    tools = server.get_json("/api/traces", span_kind="TOOL", limit=1000)["items"]
    assert tools and server.get_json("/api/traces", status="ERROR")["items"]
    trace = server.get_json(f"/api/traces/{tools[0]['trace_id']}")
    assert {span["span_kind"] for span in trace["spans"]} >= {"AGENT", "TOOL"}


def test_demo_is_a_believable_day(server: RunningServer):
    before = datetime.now(timezone.utc)
    result = CliRunner().invoke(cli, ["demo", "--endpoint", server.traces_endpoint])
    assert result.exit_code == 0, result.output
    sessions = server.get_json("/api/sessions", project="demo", limit=50)["items"]
    starts = sorted(_time(s["start_time"]) for s in sessions)
    # Spread over the last day, all in the past.
    assert before - 24 * HOUR <= starts[0] and starts[-1] < before
    assert starts[-1] - starts[0] > 6 * HOUR
    assert max(s["trace_count"] for s in sessions) >= 30  # the long conversation
    texts = {s["first_input"] for s in sessions} | {s["last_output"] for s in sessions}
    assert len(texts) >= len(sessions)  # varied, not one filler answer
    spans = [
        span
        for trace in server.get_json("/api/traces", project="demo", limit=500)["items"]
        for span in server.get_json(f"/api/traces/{trace['trace_id']}")["spans"]
    ]
    llm = [span["duration_ms"] for span in spans if span["span_kind"] == "LLM"]
    quick = [span["duration_ms"] for span in spans if span["span_kind"] == "RETRIEVER"]
    tools = [span for span in spans if span["span_kind"] == "TOOL" and span["status"]["code"] != "ERROR"]
    assert min(llm) >= 200 and max(llm) >= 2_000  # hundreds of ms to seconds
    assert quick and max(quick) < 100 and max(span["duration_ms"] for span in tools) < 500
    # An error says what happened in a way its duration agrees with.
    failed = [span for span in spans if span["status"]["code"] == "ERROR"]
    assert failed
    for span in failed:
        timeout = re.search(r"timed out after (\d+) s", span["status"]["message"])
        if timeout:
            assert abs(span["duration_ms"] - int(timeout[1]) * 1000) < 50, span
        else:
            assert span["duration_ms"] < 1000, span
    # A struggling user: more errors and more thumbs down than everyone else.
    users = server.get_json("/api/users", project="demo")["items"]
    worst = max(users, key=lambda u: u["error_rate"])
    others = [u for u in users if u is not worst]
    assert worst["error_rate"] > max(u["error_rate"] for u in others)
    # Turn-level evaluations with explanations, from the judge.
    judged = server.get_json("/api/evaluations/summary", project="demo", group_by="session")["items"]
    judged_sessions = {item["session_id"] for item in judged if item["name"] == EVALUATION}
    assert judged_sessions == {s["session_id"] for s in sessions}
    failing = server.get_json(f"/api/traces/{failed[0]['trace_id']}")
    [verdict] = [r for r in failing["evaluations"] if r["name"] == EVALUATION]
    assert verdict["label"] == "fail" and failed[0]["status"]["message"] in verdict["explanation"]
    # Judged a few seconds after the turn, in the past like it.
    end = _time(failing["end_time"])
    assert end < _time(verdict["time"]) < end + timedelta(seconds=10)


def test_the_same_seed_gives_the_same_data():
    first, again = build_conversations(seed=11), build_conversations(seed=11)
    assert first == again
    other = build_conversations(seed=12)
    assert [c.session_id for c in other] != [c.session_id for c in first]
    assert [turn.answer for c in other for turn in c.turns] != [
        turn.answer for c in first for turn in c.turns
    ]


def test_the_same_seed_sends_the_same_traces(tmp_path):
    """Two servers, one seed: the same session ids, texts and trace ids arrive at both."""
    from _server_kit import run_server

    seen = []
    for name in ("a", "b"):
        with run_server(tmp_path / f"{name}.db") as server:
            result = CliRunner().invoke(
                cli, ["demo", "--endpoint", server.traces_endpoint, "--sessions", "4", "--seed", "3"]
            )
            assert result.exit_code == 0, result.output
            traces = server.get_json("/api/traces", project="demo", limit=500)["items"]
            seen.append(sorted((t["trace_id"], t["session_id"], t["input"]) for t in traces))
    assert seen[0] == seen[1] and seen[0]


def test_demo_sends_feedback_and_ends_conversations(server: RunningServer):
    conversations = build_conversations(sessions=12, users=5)
    result = CliRunner().invoke(cli, ["demo", "--endpoint", server.traces_endpoint, "--sessions", "12"])
    assert result.exit_code == 0, result.output
    sessions = {
        s["session_id"]: s for s in server.get_json("/api/sessions", project="demo", limit=50)["items"]
    }
    assert len(sessions) == 12
    ended = {c.session_id for c in conversations if c.ended}
    assert ended and len(ended) < 12
    assert {sid for sid, s in sessions.items() if s["status"] == "ended"} == ended
    # Every thumb log_feedback() sent lands on its turn, counted on the session's row.
    for conversation in conversations:
        thumbs = [turn.feedback[0] for turn in conversation.turns if turn.feedback]
        feedback = sessions[conversation.session_id]["evaluations"].get("feedback")
        if not thumbs:
            assert feedback is None, conversation.session_id
            continue
        assert feedback["count"] == len(thumbs), conversation.session_id
        assert round(feedback["pass_rate"] * len(thumbs)) == thumbs.count(1), conversation.session_id
        # And every turn's verdict, as the session's evaluation figures.
        verdicts = [turn.verdict for turn in conversation.turns]
        quality = sessions[conversation.session_id]["evaluations"][EVALUATION]
        assert quality["count"] == len(verdicts), conversation.session_id
    frustrated = next(c for c in conversations if c.turns[-1].question == FRUSTRATED)
    turns = server.get_json(f"/api/sessions/{frustrated.session_id}", project="demo")["turns"]
    questions = [turn["input"] for turn in turns]
    assert questions[0] == questions[1] and questions[-1] == FRUSTRATED


def test_short_answers_for_the_benchmarks_keep_one_sentence():
    conversation = build_conversations(sessions=3, users=1, seed=1, answer_sentences=(1, 1))[0]
    for turn in conversation.turns:
        if not turn.tool_fails:
            assert len(re.findall(r"[.!?](\s|$)", turn.answer)) <= 2, turn.answer
    assert dataclasses.replace(conversation.turns[0], question="q").question == "q"
    assert time.time_ns()  # the module's clock is the caller's, not a fixed date
