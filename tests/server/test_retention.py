"""Retention on a real server: a pass at a given time deletes exactly the expired sessions (whole)
and the expired traces without a session, the figures left equal a recount, and the background
thread runs passes by itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _recount import assert_rollups_match_recount
from _server_kit import BASE_TIME_NS, make_request, make_turn, run_server, wait_for

from spanloom.server.retention import DAY_NS
from spanloom.server.settings import Settings, parse_retention

DAY_MS = 86_400_000


def _post(server, session_id, user_id, start_ms, project="shop"):
    trace_id, spans = make_turn(session_id, user_id, start_ms)
    assert server.post_spans(make_request(spans, {"project.name": project})).status_code == 200
    return trace_id


def test_a_pass_deletes_exactly_what_expired(tmp_path: Path):
    db = tmp_path / "retention.db"
    with run_server(db, retention_days=7, retention_by_project={"audit": 30}) as server:
        old = _post(server, "old", "alice", 0)
        _post(server, "ongoing", "alice", 0)
        _post(server, "ongoing", "alice", 6 * DAY_MS)  # its last turn is recent: it stays whole
        loose_old = _post(server, None, "bob", 0)
        loose_new = _post(server, None, "bob", 6 * DAY_MS)
        _post(server, "kept-longer", "carol", 0, project="audit")  # 30 days there
        result = server.app.state.retention.run_once(BASE_TIME_NS + 8 * DAY_NS)
        assert (result.sessions, result.traces, result.spans) == (1, 2, 4)
        sessions = {(s["project"], s["session_id"]) for s in server.get_json("/api/sessions")["items"]}
        assert sessions == {("shop", "ongoing"), ("audit", "kept-longer")}
        assert server.get_json("/api/sessions/ongoing", project="shop")["trace_count"] == 2
        assert server.get(f"/api/traces/{old.hex()}").status_code == 404
        assert server.get(f"/api/traces/{loose_old.hex()}").status_code == 404
        assert server.get(f"/api/traces/{loose_new.hex()}").status_code == 200
        alice = server.get_json("/api/users/alice", project="shop")
        assert (alice["trace_count"], alice["session_count"]) == (2, 1)
        assert server.get_json("/api/users/bob", project="shop")["trace_count"] == 1
        projects = {p["name"]: p["trace_count"] for p in server.get_json("/api/projects")["items"]}
        assert projects == {"audit": 1, "shop": 3}
        recount = assert_rollups_match_recount(db)
        assert (recount.sessions, recount.users) == (2, 3)
        # A month later the audit project's session goes too.
        server.app.state.retention.run_once(BASE_TIME_NS + 31 * DAY_NS)
        assert server.get_json("/api/projects")["items"] == []
        assert_rollups_match_recount(db)


def test_the_background_thread_runs_passes(tmp_path: Path):
    with run_server(tmp_path / "thread.db", retention_days=7, retention_interval_seconds=1) as server:
        runner = server.app.state.retention
        wait_for(lambda: runner.passes >= 1, what="the first retention pass")
        # Spans from 2025 (the test data's time) are long expired by the real clock.
        old = _post(server, "old", "u", 0)
        recent = make_turn("recent", "u", (time.time_ns() - BASE_TIME_NS) / 1e6)[1]
        assert server.post_spans(make_request(recent, {"project.name": "shop"})).status_code == 200
        wait_for(
            lambda: server.get(f"/api/traces/{old.hex()}").status_code == 404, what="the old trace to go"
        )
        assert [s["session_id"] for s in server.get_json("/api/sessions")["items"]] == ["recent"]


def test_retention_settings():
    assert parse_retention("shop=7, support=30") == {"shop": 7, "support": 30}
    assert parse_retention(["a=1", "b=2"]) == {"a": 1, "b": 2}
    for bad in ("shop", "shop=0", "=3", "shop=x"):
        with pytest.raises(ValueError, match="PROJECT=DAYS"):
            parse_retention(bad)
    settings = Settings.from_env({"SPANLOOM_RETENTION_DAYS": "14", "SPANLOOM_RETENTION": "audit=90"})
    assert (settings.retention_days, settings.retention_by_project) == (14, {"audit": 90})
    assert Settings.from_env({}).retention_days is None
