"""SPANLOOM_CORS_ORIGINS: the browser-facing writes (feedback, ending a session) answer the
configured origins' preflights and requests; nothing else ever gets CORS headers, and without
the setting no origin is allowed. tests/browser/test_feedback_browser.py does the same from Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _server_kit import RunningServer, run_server

from spanloom.server.cors import parse_origins
from spanloom.server.settings import Settings

APP = "http://app.example:3000"
INGEST = "cors-ingest-key-0123456789abc"


def preflight(server: RunningServer, path: str, origin: str = APP):
    return server.client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


@pytest.fixture
def allowing(tmp_path: Path) -> Iterator[RunningServer]:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": [{"key": INGEST, "role": "ingest", "projects": ["shop"]}]}))
    with run_server(tmp_path / "cors.db", keys_file=keys, cors_origins=(APP,)) as server:
        yield server


def test_the_configured_origin_may_send_feedback_and_end_sessions(allowing: RunningServer):
    for path in ("/api/feedback", "/api/sessions/conv%201/end"):
        answer = preflight(allowing, path)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["access-control-allow-origin"] == APP
        assert "POST" in answer.headers["access-control-allow-methods"]
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in answer.headers
    sent = allowing.client.post(
        "/api/feedback",
        json={"session_id": "conv", "score": 1},
        headers={"Origin": APP, "Authorization": f"Bearer {INGEST}"},
    )
    assert sent.status_code == 200 and sent.headers["access-control-allow-origin"] == APP
    # The key is still required: CORS lets the browser send, it does not let anyone in.
    body = {"session_id": "c", "score": 1}
    keyless = allowing.client.post("/api/feedback", json=body, headers={"Origin": APP})
    assert keyless.status_code == 401


def test_other_origins_and_other_paths_get_no_cors(allowing: RunningServer):
    assert preflight(allowing, "/api/feedback", origin="http://evil.example").status_code == 400
    for path in ("/api/sessions", "/api/evaluations", "/v1/traces", "/api/sessions/conv/end/x"):
        answer = preflight(allowing, path)
        assert "access-control-allow-origin" not in answer.headers, path
    read = allowing.client.get("/api/sessions", headers={"Origin": APP, "Authorization": f"Bearer {INGEST}"})
    assert "access-control-allow-origin" not in read.headers


def test_without_the_setting_no_origin_is_allowed(server: RunningServer):
    answer = preflight(server, "/api/feedback")
    assert "access-control-allow-origin" not in answer.headers
    sent = server.client.post("/api/feedback", json={"session_id": "c", "score": 1}, headers={"Origin": APP})
    assert "access-control-allow-origin" not in sent.headers


def test_origins_from_the_environment():
    settings = Settings.from_env({"SPANLOOM_CORS_ORIGINS": " https://app.example/, http://localhost:3000 "})
    assert settings.cors_origins == ("https://app.example", "http://localhost:3000")
    assert Settings.from_env({}).cors_origins == ()
    assert parse_origins("*") == ("*",)
    for bad in ("app.example", "https://app.example/chat", "ftp://app.example"):
        with pytest.raises(ValueError, match="SPANLOOM_CORS_ORIGINS"):
            parse_origins(bad)
