"""`spanloom demo` into a real server: sessions, users, tool calls and the one error arrive."""

from __future__ import annotations

from _server_kit import RunningServer
from click.testing import CliRunner

from spanloom.cli import cli
from spanloom.demo import FRUSTRATED, build_conversations


def test_demo_fills_the_server(server: RunningServer):
    result = CliRunner().invoke(
        cli, ["demo", "--endpoint", server.traces_endpoint, "--sessions", "6", "--users", "3"]
    )
    assert result.exit_code == 0, result.output
    sessions = server.get_json("/api/sessions", project="demo")["items"]
    assert len(sessions) == 6
    assert len(server.get_json("/api/users")["items"]) <= 3
    assert sum(s["error_count"] for s in sessions) == 1
    assert all(s["total_tokens"] > 0 and s["cost"] > 0 and s["first_input"] for s in sessions)
    tools = server.get_json("/api/traces", span_kind="TOOL", limit=1000)["items"]
    assert tools and server.get_json("/api/traces", status="ERROR")["items"]
    trace = server.get_json(f"/api/traces/{tools[0]['trace_id']}")
    assert {span["span_kind"] for span in trace["spans"]} >= {"AGENT", "TOOL"}


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
    frustrated = next(c for c in conversations if c.turns[-1].question == FRUSTRATED)
    turns = server.get_json(f"/api/sessions/{frustrated.session_id}", project="demo")["turns"]
    questions = [turn["input"] for turn in turns]
    assert questions[0] == questions[1] and questions[-1] == FRUSTRATED
