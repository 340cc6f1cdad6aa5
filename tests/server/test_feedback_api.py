"""End users' feedback and ended sessions through the JSON API, on a real server: feedback on a
turn and on a session, before and after its spans, idempotent by id, scoped by key; sessions
ended, reopened and listed by status; lists sorted and filtered by feedback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _server_kit import BASE_TIME_NS, RunningServer, make_request, make_turn, run_server

INGEST = "feedback-ingest-key-0123456789"
READ = "feedback-read-key-01234567890"
OTHER = "other-project-ingest-key-0123"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[RunningServer]:
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {"key": INGEST, "role": "ingest", "projects": ["shop"]},
                    {"key": READ, "role": "read", "projects": ["shop"]},
                    {"key": OTHER, "role": "ingest", "projects": ["support"]},
                ]
            }
        )
    )
    with run_server(tmp_path / "feedback.db", keys_file=keys) as server:
        yield server


def _post(server: RunningServer, path: str, body: object, key: str = INGEST):
    return server.client.post(path, json=body, headers=bearer(key))


def _get(server: RunningServer, path: str, **params: object):
    response = server.client.get(path, params=params, headers=bearer(READ))
    assert response.status_code == 200, response.text
    return response.json()


def test_feedback_lands_on_its_turn_session_and_user(keyed: RunningServer):
    # The feedback comes first: the web handler answered before the exporter sent the spans.
    first_turn, spans = make_turn("conv", "alice", 0)
    answer = _post(
        keyed, "/api/feedback", {"id": "fb-1", "trace_id": first_turn.hex(), "score": -1, "comment": "wrong"}
    )
    assert answer.status_code == 200, answer.text
    second_turn, more = make_turn("conv", "alice", 1000)
    assert (
        keyed.post_spans(make_request(spans + more, {"project.name": "shop"}), bearer(INGEST)).status_code
        == 200
    )
    _post(keyed, "/api/feedback", [{"id": "fb-2", "trace_id": second_turn.hex(), "score": 1}])
    _post(keyed, "/api/feedback", [{"id": "fb-2", "trace_id": second_turn.hex(), "score": 1}])  # retried
    _post(keyed, "/api/feedback", {"id": "fb-3", "session_id": "conv", "label": "thumbs-down", "score": -1})
    session = _get(keyed, "/api/sessions/conv")
    feedback = session["evaluations"]["feedback"]
    assert (feedback["count"], feedback["pass_rate"]) == (3, pytest.approx(1 / 3))
    assert [(r["id"], r["label"]) for r in session["results"]] == [("fb-3", "thumbs-down")]
    first = session["turns"][0]["evaluations"]
    assert [(r["id"], r["score"], r["explanation"], r["span_id"]) for r in first] == [
        ("fb-1", -1.0, "wrong", None)
    ]
    user = _get(keyed, "/api/users/alice")
    assert user["evaluations"]["feedback"]["count"] == 3
    assert [s["session_id"] for s in _get(keyed, "/api/sessions", has_negative_feedback="true")["items"]] == [
        "conv"
    ]
    assert _get(keyed, "/api/sessions", has_negative_feedback="false")["items"] == []
    assert [t["trace_id"] for t in _get(keyed, "/api/traces", has_negative_feedback="true")["items"]] == [
        first_turn.hex()
    ]
    assert [u["user_id"] for u in _get(keyed, "/api/users", sort="feedback", order="asc")["items"]] == [
        "alice"
    ]


def test_feedback_is_bounded_and_scoped(keyed: RunningServer):
    turn, spans = make_turn("conv", "alice", 0)
    assert keyed.post_spans(make_request(spans, {"project.name": "shop"}), bearer(INGEST)).status_code == 200
    bad = _post(
        keyed,
        "/api/feedback",
        [
            {"trace_id": turn.hex()},  # neither score nor label
            {"trace_id": turn.hex(), "session_id": "conv", "score": 1},  # both targets
            {"trace_id": "xyz", "score": 1},
            {"session_id": "conv", "score": 10**9},
            "not an object",
        ],
    )
    assert bad.status_code == 422
    assert [item["index"] for item in bad.json()["rejected"]] == [0, 1, 2, 3, 4]
    # Another project's key: the turn answers as one that was never stored.
    foreign = _post(keyed, "/api/feedback", {"trace_id": turn.hex(), "score": -1}, key=OTHER)
    assert foreign.status_code == 200  # kept for a trace of its own project, should one arrive...
    session = _get(keyed, "/api/sessions/conv")
    assert "feedback" not in session["evaluations"]  # ...and never counted for shop's trace
    too_many = _post(keyed, "/api/feedback", [{"session_id": "conv", "score": 1}] * 1001)
    assert too_many.status_code == 413
    reader = keyed.client.post("/api/feedback", json={"session_id": "conv", "score": 1}, headers=bearer(READ))
    assert reader.status_code == 403


def test_sessions_end_reopen_and_list_by_status(keyed: RunningServer):
    _, spans = make_turn("talk", "bob", 0)
    assert keyed.post_spans(make_request(spans, {"project.name": "shop"}), bearer(INGEST)).status_code == 200
    ended = _post(keyed, "/api/sessions/talk/end", None)
    assert ended.status_code == 200 and ended.json() == {
        "project": "shop",
        "session_id": "talk",
        "ended": True,
    }
    assert _get(keyed, "/api/sessions/talk")["status"] == "ended"
    assert [s["session_id"] for s in _get(keyed, "/api/sessions", status="ended")["items"]] == ["talk"]
    assert _get(keyed, "/api/sessions", status="active")["items"] == []
    # The test data is from 2025: a session not ended is long idle.
    _, other = make_turn("quiet", "bob", 0)
    assert keyed.post_spans(make_request(other, {"project.name": "shop"}), bearer(INGEST)).status_code == 200
    assert [s["session_id"] for s in _get(keyed, "/api/sessions", status="idle")["items"]] == ["quiet"]
    # A turn that ends after the end reopens the conversation: it is active again.
    _, later = make_turn("talk", "bob", (time.time_ns() - BASE_TIME_NS) / 1e6 + 1000)
    assert keyed.post_spans(make_request(later, {"project.name": "shop"}), bearer(INGEST)).status_code == 200
    assert _get(keyed, "/api/sessions/talk")["status"] == "active"
    assert [s["session_id"] for s in _get(keyed, "/api/sessions", status="active")["items"]] == ["talk"]
    assert _get(keyed, "/api/sessions", status="ended")["items"] == []
    assert _post(keyed, "/api/sessions/nobody-yet/end", None).status_code == 200  # the key's one project
    assert _post(keyed, "/api/sessions/talk/end?project=support", None).status_code == 404
    assert (
        keyed.client.get("/api/sessions", params={"status": "sleeping"}, headers=bearer(READ)).status_code
        == 400
    )


def test_without_keys_a_session_end_needs_a_project_when_unclear(tmp_path: Path):
    with run_server(tmp_path / "open.db") as server:
        response = server.client.post("/api/sessions/unknown/end")
        assert response.status_code == 400 and "project" in response.json()["error"]["message"]
        assert server.client.post("/api/sessions/unknown/end", params={"project": "p"}).status_code == 200
