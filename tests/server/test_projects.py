"""Two projects that use the same session id and the same user id, through the JSON API and the
pages, with per-project keys: each project reads back its own conversation and figures, a key of
one project learns nothing of the other (its ids answer exactly like unknown ids), and an id
named without a project that two readable projects hold answers 409 with both."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _server_kit import RunningServer, make_request, make_span, make_turn, new_span_id, run_server
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

ADMIN = "projects-admin-key-0123456789"
SHOP_READ = "shop-read-key-0123456789abcd"
SHOP_INGEST = "shop-ingest-key-0123456789ab"
SUPPORT_READ = "support-read-key-0123456789a"
SUPPORT_INGEST = "support-ingest-key-012345678"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, store_backend: str
) -> Iterator[tuple[RunningServer, dict[str, bytes]]]:
    """Session shared-2 and user alice in shop (two turns) and in support (one failing turn)."""
    directory = tmp_path_factory.mktemp("projects")
    keys = directory / "keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {"key": ADMIN, "role": "admin", "projects": "*"},
                    {"key": SHOP_READ, "role": "read", "projects": ["shop"]},
                    {"key": SHOP_INGEST, "role": "ingest", "projects": ["shop"]},
                    {"key": SUPPORT_READ, "role": "read", "projects": ["support"]},
                    {"key": SUPPORT_INGEST, "role": "ingest", "projects": ["support"]},
                ]
            }
        )
    )
    with run_server(directory / "projects.db", keys_file=keys, backend=store_backend) as server:
        traces = {}
        for project, key, turns in (("shop", SHOP_INGEST, 2), ("support", SUPPORT_INGEST, 1)):
            spans = []
            for turn in range(turns):
                trace_id, turn_spans = make_turn(
                    "shared-2",
                    "alice",
                    turn * 1000,
                    question=f"{project} question {turn}",
                    answer=f"{project} answer {turn}",
                    error=project == "support",
                )
                traces[f"{project}-{turn}"] = trace_id
                spans += turn_spans
            response = server.post_spans(make_request(spans, {"project.name": project}), bearer(key))
            assert response.status_code == 200, response.text
        yield server, traces


def get(server: RunningServer, path: str, key: str, **params: Any) -> Any:
    # Without params, a query string in `path` is kept (httpx replaces it with params= otherwise).
    return server.client.get(path, params=params or None, headers=bearer(key))


def test_each_project_reads_back_its_own_session(shared: tuple[RunningServer, dict[str, bytes]]):
    server, _ = shared
    for project, turns, errors in (("shop", 2, 0), ("support", 1, 1)):
        listed = get(server, "/api/sessions", ADMIN, project=project).json()["items"]
        assert [(s["project"], s["session_id"], s["trace_count"]) for s in listed] == [
            (project, "shared-2", turns)
        ]
        detail = get(server, "/api/sessions/shared-2", ADMIN, project=project)
        assert detail.status_code == 200
        body = detail.json()
        assert (body["project"], body["trace_count"], body["error_count"]) == (project, turns, errors)
        assert [turn["input"] for turn in body["turns"]] == [f"{project} question {n}" for n in range(turns)]
        user = get(server, "/api/users/alice", ADMIN, project=project).json()
        assert (user["project"], user["trace_count"], user["session_count"]) == (project, turns, 1)
        assert [s["project"] for s in user["sessions"]["items"]] == [project]
    projects = {p["name"]: p for p in get(server, "/api/projects", ADMIN).json()["items"]}
    assert (projects["shop"]["session_count"], projects["support"]["session_count"]) == (1, 1)
    assert (projects["shop"]["user_count"], projects["support"]["user_count"]) == (1, 1)


def test_an_id_in_two_projects_is_ambiguous_without_project(shared: tuple[RunningServer, dict[str, bytes]]):
    server, _ = shared
    for path, kind in (("/api/sessions/shared-2", "session"), ("/api/users/alice", "user")):
        response = get(server, path, ADMIN)
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "ambiguous" and error["projects"] == ["shop", "support"]
        assert kind in error["message"] and "project=" in error["message"]
    page = get(server, "/sessions/shared-2", ADMIN)
    assert page.status_code == 409
    links = re.findall(r'href="(/sessions/shared-2\?project=[^"]+)"', page.text)
    assert links == ["/sessions/shared-2?project=shop", "/sessions/shared-2?project=support"]
    user_page = get(server, "/users/alice", ADMIN)
    assert user_page.status_code == 409 and 'href="/users/alice?project=support"' in user_page.text
    # Each link opens that project's conversation.
    opened = get(server, links[1], ADMIN)
    assert (
        opened.status_code == 200
        and "support question 0" in opened.text
        and "shop question" not in opened.text
    )


def test_a_project_key_sees_only_its_own(shared: tuple[RunningServer, dict[str, bytes]]):
    server, _ = shared
    for key, mine, theirs in ((SHOP_READ, "shop", "support"), (SUPPORT_READ, "support", "shop")):
        # Without a project, the id resolves to the one project this key may read.
        detail = get(server, "/api/sessions/shared-2", key)
        assert detail.status_code == 200 and detail.json()["project"] == mine
        assert {turn["input"].split()[0] for turn in detail.json()["turns"]} == {mine}
        assert get(server, "/api/users/alice", key).json()["project"] == mine
        page = get(server, "/sessions/shared-2", key)
        assert page.status_code == 200 and f"{mine} question 0" in page.text and theirs not in page.text
        # The other project's ids answer exactly like ids that do not exist.
        for path in ("/api/sessions/{}", "/api/users/{}"):
            theirs_response = get(
                server, path.format("shared-2" if "sessions" in path else "alice"), key, project=theirs
            )
            unknown = get(server, path.format("no-such-id"), key, project=theirs)
            assert theirs_response.status_code == unknown.status_code == 404
            assert theirs_response.json()["error"]["code"] == unknown.json()["error"]["code"]
            assert theirs_response.json()["error"]["message"].replace("shared-2", "X").replace(
                "alice", "X"
            ) == (unknown.json()["error"]["message"].replace("no-such-id", "X"))
        assert get(server, "/sessions/shared-2", key, project=theirs).status_code == 404
        assert [p["name"] for p in get(server, "/api/projects", key).json()["items"]] == [mine]
        listed = get(server, "/api/sessions", key).json()["items"]
        assert [s["project"] for s in listed] == [mine]
        assert get(server, "/api/sessions", key, project=theirs).status_code == 404
        texts = json.dumps(get(server, "/api/traces", key, limit=100).json())
        assert theirs not in texts


def test_evaluation_aggregates_stay_in_their_project(shared: tuple[RunningServer, dict[str, bytes]]):
    server, traces = shared
    for trace, key, score in (("shop-0", SHOP_INGEST, 0.9), ("support-0", SUPPORT_INGEST, 0.1)):
        response = server.client.post(
            "/api/evaluations",
            json=[{"trace_id": traces[trace].hex(), "name": "resolved", "score": score}],
            headers=bearer(key),
        )
        assert response.status_code == 200, response.text
    for project, score in (("shop", 0.9), ("support", 0.1)):
        session = get(server, "/api/sessions/shared-2", ADMIN, project=project).json()
        assert session["evaluations"]["resolved"]["mean_score"] == pytest.approx(score)
        user = get(server, "/api/users/alice", ADMIN, project=project).json()
        assert user["evaluations"]["resolved"]["mean_score"] == pytest.approx(score)
    summary = get(server, "/api/evaluations/summary", SHOP_READ, group_by="session").json()["items"]
    assert [(row["project"], row["session_id"]) for row in summary] == [("shop", "shared-2")]
    users = get(server, "/api/evaluations/summary", ADMIN, group_by="user").json()["items"]
    assert sorted((row["project"], row["user_id"]) for row in users) == [
        ("shop", "alice"),
        ("support", "alice"),
    ]


def test_a_key_cannot_write_into_another_projects_trace(shared: tuple[RunningServer, dict[str, bytes]]):
    server, traces = shared
    victim = traces["support-0"]
    # An earlier "root" for support's trace, sent with shop's key and naming shop.
    hijack = make_span(
        victim, new_span_id(), b"", "hijack", -5000, 10_000, {"session.id": "stolen", "user.id": "x"}
    )
    response = server.post_spans(make_request([hijack], {"project.name": "shop"}), bearer(SHOP_INGEST))
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "belongs to a project this key may not write" in answer.partial_success.error_message
    trace = get(server, f"/api/traces/{victim.hex()}", SUPPORT_READ).json()
    assert trace["project"] == "support" and len(trace["spans"]) == 2
    assert get(server, f"/api/traces/{victim.hex()}", SHOP_READ).status_code == 404
    assert get(server, "/api/sessions/stolen", ADMIN).status_code == 404
    assert [p["name"] for p in get(server, "/api/projects", ADMIN).json()["items"]] == ["shop", "support"]
    # A result on the other project's trace answers as for a trace that is not stored.
    for trace_id in (victim.hex(), "ab" * 16):
        judged = server.client.post(
            "/api/evaluations",
            json=[{"trace_id": trace_id, "name": "sneaky", "score": 0}],
            headers=bearer(SHOP_INGEST),
        )
        assert judged.status_code == 422
        assert judged.json()["rejected"][0]["reason"] == f"no trace {trace_id!r} is stored"
    support = get(server, "/api/sessions/shared-2", ADMIN, project="support").json()
    assert "sneaky" not in support["evaluations"]


def test_without_keys_the_id_resolves_when_one_project_holds_it(tmp_path: Path, store_backend: str):
    with run_server(tmp_path / "open.db", backend=store_backend) as server:
        for project in ("a", "b"):
            _, spans = make_turn("only-in-a" if project == "a" else "only-in-b", "u")
            assert server.post_spans(make_request(spans, {"project.name": project})).status_code == 200
        assert server.get_json("/api/sessions/only-in-b")["project"] == "b"
        assert server.get("/api/sessions/only-in-b", project="a").status_code == 404
        assert server.get("/api/users/u").status_code == 409
        assert server.get_json("/api/users/u", project="a")["project"] == "a"
