"""`spanloom demo` into a real server: sessions, users, tool calls and the one error arrive."""

from __future__ import annotations

from _server_kit import RunningServer
from click.testing import CliRunner

from spanloom.cli import cli


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
