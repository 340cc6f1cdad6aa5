"""Every list filter and sort of the JSON API, and cursor pagination without gaps or repeats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _server_kit import RunningServer, make_request, make_turn, run_server

SESSIONS = 30
SESSION_FIELDS = {
    "start_time": "start_time",
    "last_activity": "end_time",
    "turns": "trace_count",
    "tokens": "total_tokens",
    "cost": "cost",
    "latency": "latency_p50_ms",
    "errors": "error_count",
}
USER_FIELDS = {
    "last_seen": "last_seen",
    "first_seen": "first_seen",
    "sessions": "session_count",
    "traces": "trace_count",
    "tokens": "total_tokens",
    "cost": "cost",
    "errors": "error_count",
}
TRACE_FIELDS = {
    "start_time": "start_time",
    "latency": "latency_ms",
    "tokens": "total_tokens",
    "cost": "cost",
    "errors": "error_count",
    "spans": "span_count",
}


def session_spec(index: int) -> dict[str, Any]:
    """Session `index` of the fixture data: varied enough that every filter splits it."""
    return {
        "session_id": f"s{index:02d}",
        "user_id": f"u{index % 4}",
        "project": "p2" if index % 3 == 0 else "p1",
        "turns": 1 + index % 4,
        "error": index % 7 == 0,
        "tag": "even" if index % 2 == 0 else "odd",
        "tier": "gold" if index % 5 == 0 else "free",
        "model": "claude-3-5-sonnet" if index % 2 == 0 else "gpt-4o",
        "tool": index % 6 == 0,
        "start_ms": index * 60_000,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[RunningServer]:
    db: Path = tmp_path_factory.mktemp("lists") / "spanloom.db"
    with run_server(db, backend=store_backend) as running:
        for index in range(SESSIONS):
            spec = session_spec(index)
            spans = []
            for turn in range(spec["turns"]):
                question = "find the needle" if (index, turn) == (13, 1) else f"question {index}.{turn}"
                _, turn_spans = make_turn(
                    spec["session_id"],
                    spec["user_id"],
                    spec["start_ms"] + turn * 1000,
                    question=question,
                    error=spec["error"] and turn == spec["turns"] - 1,
                    model=spec["model"],
                    tokens=(100 + index * 10, 20 + index),
                    extra={
                        "tag.tags": [spec["tag"]],
                        "metadata": f'{{"tier": "{spec["tier"]}", "n": {index}}}',
                    },
                    duration_ms=50 + (index * 37) % 200,
                    tool=spec["tool"],
                )
                spans += turn_spans
            response = running.post_spans(make_request(spans, {"project.name": spec["project"]}))
            assert response.status_code == 200
        yield running


def ids(items: list[dict[str, Any]], key: str = "session_id") -> list[str]:
    return [item[key] for item in items]


def all_items(server: RunningServer, path: str, **params: Any) -> list[dict[str, Any]]:
    return server.get_json(path, limit=1000, **params)["items"]


def expected_sessions(predicate: Any) -> set[str]:
    return {session_spec(i)["session_id"] for i in range(SESSIONS) if predicate(session_spec(i))}


@pytest.mark.parametrize(
    ("params", "predicate"),
    [
        ({"project": "p2"}, lambda s: s["project"] == "p2"),
        ({"user_id": "u1"}, lambda s: s["user_id"] == "u1"),
        ({"has_error": "true"}, lambda s: s["error"]),
        ({"has_error": "false"}, lambda s: not s["error"]),
        ({"tag": "even"}, lambda s: s["tag"] == "even"),
        ({"metadata.tier": "gold"}, lambda s: s["tier"] == "gold"),
        ({"metadata.n": "7"}, lambda s: s["session_id"] == "s07"),
        ({"q": "NEEDLE"}, lambda s: s["session_id"] == "s13"),
        ({"q": "s2"}, lambda s: s["session_id"].startswith("s2")),
        ({"q": "100%"}, lambda s: False),  # LIKE wildcards in q are literal
        ({"start": "2025-06-15T15:26:40Z"}, lambda s: s["start_ms"] + s["turns"] * 1000 >= 1_200_000),
        ({"end": "1750001200"}, lambda s: s["start_ms"] <= 1_200_000),
        (
            {"project": "p1", "tag": "odd", "has_error": "false"},
            lambda s: s["project"] == "p1" and s["tag"] == "odd" and not s["error"],
        ),
    ],
)
def test_session_filters(server: RunningServer, params: dict[str, str], predicate: Any):
    assert set(ids(all_items(server, "/api/sessions", **params))) == expected_sessions(predicate)


@pytest.mark.parametrize("sort", sorted(SESSION_FIELDS))
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_session_sorts_and_pages(server: RunningServer, sort: str, order: str):
    check_sorted_and_paged(server, "/api/sessions", "session_id", SESSION_FIELDS[sort], sort, order)


def check_sorted_and_paged(server: RunningServer, path: str, id_key: str, field: str, sort: str, order: str):
    """Sorted by the field, ties by the row's key: (project, id) where an id is unique only inside
    its project (sessions, users), the id alone for traces; pages visit every row once."""
    everything = all_items(server, path, sort=sort, order=order)
    key = ("project", id_key) if id_key in ("session_id", "user_id") else (id_key,)
    keys = [(item[field], *(item[part] for part in key)) for item in everything]
    assert keys == sorted(keys, reverse=order == "desc")
    paged, cursor = [], None
    while True:
        params = {"sort": sort, "order": order, "limit": 7, **({"cursor": cursor} if cursor else {})}
        page = server.get_json(path, **params)
        paged += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [(item["project"], item[id_key]) for item in paged] == [
        (item["project"], item[id_key]) for item in everything
    ]


def test_pages_stay_exact_while_new_sessions_arrive(tmp_path: Path, store_backend: str):
    with run_server(tmp_path / "paging.db", backend=store_backend) as server:
        for index in range(12):
            _, spans = make_turn(f"s{index:02d}", "u", index * 1000)
            assert server.post_spans(make_request(spans)).status_code == 200
        first = server.get_json("/api/sessions", sort="start_time", order="asc", limit=5)
        # Sessions that sort before the cursor, or tie with it, must not shift the next pages.
        for session_id, start_ms in (("s-early", -60_000), ("s-tie", 4000)):
            _, spans = make_turn(session_id, "u", start_ms)
            assert server.post_spans(make_request(spans)).status_code == 200
        rest = all_items(server, "/api/sessions", sort="start_time", order="asc", cursor=first["next_cursor"])
        # ("s-tie" sorts before "s04" at the same time, so it belongs to the first page's range.)
        assert ids(first["items"]) + ids(rest) == [f"s{i:02d}" for i in range(12)]


def test_session_detail_turns_in_time_order(server: RunningServer):
    detail = server.get_json("/api/sessions/s07")
    assert [turn["input"] for turn in detail["turns"]] == [
        "question 7.0",
        "question 7.1",
        "question 7.2",
        "question 7.3",
    ]
    assert detail["first_failing_turn"]["index"] == 3 and detail["error_count"] == 1
    assert server.get_json("/api/sessions/s01")["first_failing_turn"] is None
    turn = detail["turns"][0]
    assert set(turn) >= {
        "trace_id",
        "start_time",
        "input",
        "output",
        "latency_ms",
        "total_tokens",
        "cost",
        "status",
    }
    assert turn["cost"] == pytest.approx((170 * 2.5 + 27 * 10) / 1e6)


def test_user_filters(server: RunningServer):
    """Users are (project, id): u1 of p1 and u1 of p2 are two users."""

    def users(**params: str) -> set[tuple[str, str]]:
        return {(item["project"], item["user_id"]) for item in all_items(server, "/api/users", **params)}

    specs = [session_spec(i) for i in range(SESSIONS)]
    everyone = {(s["project"], s["user_id"]) for s in specs}
    assert len(everyone) == 8  # four user ids in each of two projects
    assert users() == everyone
    assert users(has_error="true") == {(s["project"], s["user_id"]) for s in specs if s["error"]}
    assert users(has_error="false") == everyone - users(has_error="true")
    assert users(project="p2") == {key for key in everyone if key[0] == "p2"}
    assert users(user_id="u1") == {("p1", "u1"), ("p2", "u1")}
    assert users(q="U2") == {("p1", "u2"), ("p2", "u2")}
    assert users(start="1750001740") == {("p1", "u1")}  # only s29 (u1 of p1) is active that late
    assert users(end="1750000030") == {("p2", "u0")}  # only s00 (u0 of p2) started by then


@pytest.mark.parametrize("params", [{"tag": "odd"}, {"metadata.tier": "gold"}])
def test_users_refuse_the_filters_they_cannot_apply(server: RunningServer, params: dict[str, str]):
    """Users have no tags or metadata: such a filter answers 400 rather than being ignored."""
    response = server.client.get("/api/users", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(next(iter(params)))


def test_user_aggregates(server: RunningServer):
    ambiguous = server.client.get("/api/users/u1")
    assert ambiguous.status_code == 409
    assert ambiguous.json()["error"]["projects"] == ["p1", "p2"]
    user = server.get_json("/api/users/u1", project="p1")
    assert user["project"] == "p1"
    mine = [session_spec(i) for i in range(SESSIONS) if session_spec(i)["user_id"] == "u1"]
    mine = [spec for spec in mine if spec["project"] == "p1"]
    assert user["session_count"] == len(mine)
    assert user["trace_count"] == sum(s["turns"] for s in mine)
    assert user["error_count"] == sum(s["error"] for s in mine)
    sessions = user["sessions"]["items"]
    assert ids(sessions) == sorted(ids(sessions), reverse=True)  # latest first
    assert {session["project"] for session in sessions} == {"p1"}
    page = server.get_json("/api/users/u1", project="p1", limit=2)
    assert len(page["sessions"]["items"]) == 2 and page["sessions"]["next_cursor"]


@pytest.mark.parametrize("sort", sorted(USER_FIELDS))
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_user_sorts_and_pages(server: RunningServer, sort: str, order: str):
    check_sorted_and_paged(server, "/api/users", "user_id", USER_FIELDS[sort], sort, order)


def trace_sessions(server: RunningServer, **params: str) -> set[str]:
    return {item["session_id"] for item in all_items(server, "/api/traces", **params)}


def test_trace_filters(server: RunningServer):
    assert [t["session_id"] for t in all_items(server, "/api/traces", session_id="s05")] == ["s05"] * 2
    assert trace_sessions(server, span_kind="tool") == expected_sessions(lambda s: s["tool"])
    assert trace_sessions(server, model="gpt-4o") == expected_sessions(lambda s: s["model"] == "gpt-4o")
    assert trace_sessions(server, status="ERROR") == expected_sessions(lambda s: s["error"])
    assert trace_sessions(server, has_error="true") == expected_sessions(lambda s: s["error"])
    assert trace_sessions(server, project="p2", user_id="u0") == expected_sessions(
        lambda s: s["project"] == "p2" and s["user_id"] == "u0"
    )
    assert trace_sessions(server, tag="odd", **{"metadata.tier": "gold"}) == expected_sessions(
        lambda s: s["tag"] == "odd" and s["tier"] == "gold"
    )
    needle = all_items(server, "/api/traces", q="needle")
    assert [(t["session_id"], t["input"]) for t in needle] == [("s13", "find the needle")]
    window = all_items(server, "/api/traces", start="1750000060", end="1750000061.5")
    assert sorted(t["input"] for t in window) == ["question 1.0", "question 1.1"]


@pytest.mark.parametrize("sort", sorted(TRACE_FIELDS))
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_trace_sorts_and_pages(server: RunningServer, sort: str, order: str):
    check_sorted_and_paged(server, "/api/traces", "trace_id", TRACE_FIELDS[sort], sort, order)
