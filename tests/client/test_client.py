"""spanloom.Client against a real server filled through the SDK: every method, paging, DataFrames,
errors. Retries are in test_retry.py."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pandas as pd
import polars as pl
import pytest
from _client_kit import CONVERSATIONS, FAILING_SESSION, INGEST, OTHER_READ, PROJECT, READ, Filled, bearer

import spanloom
from spanloom.client import (
    Evaluation,
    EvaluationGroup,
    Pages,
    Project,
    Session,
    SessionDetail,
    Span,
    SpanloomClient,
    SpanloomClientError,
    Trace,
    TraceDetail,
    User,
)

SESSIONS = {session_id for sessions in CONVERSATIONS.values() for session_id in sessions}
TURNS = sum(len(messages) for sessions in CONVERSATIONS.values() for messages in sessions.values())


def client_cursor(filled: Filled, path: str) -> str:
    page = filled.server.client.get(path, params={"limit": 1}, headers=bearer(READ)).json()
    return page["next_cursor"]


@pytest.fixture
def client(filled: Filled):
    with spanloom.Client(filled.server.url, api_key=READ) as opened:
        yield opened


def test_projects(client: spanloom.Client):
    (project,) = client.projects().to_list()
    assert isinstance(project, Project) and project.name == PROJECT
    assert project.session_count == len(SESSIONS) and project.trace_count == TURNS
    assert project.span_count == 2 * TURNS and project.user_count == 2
    assert project.first_span_time.tzinfo is not None and project.first_span_time <= project.last_span_time


def test_sessions_typed_and_filtered(client: spanloom.Client):
    sessions = client.sessions(PROJECT)
    assert isinstance(sessions, Pages)
    rows = list(sessions)
    assert {row.session_id for row in rows} == SESSIONS
    b1 = next(row for row in rows if row.session_id == "b1")
    assert isinstance(b1, Session) and b1.user_id == "bob" and b1.trace_count == 3
    assert b1.total_tokens == 45 and isinstance(b1.start_time, datetime) and b1.start_time.tzinfo
    assert b1.first_input == "Refund please" and b1.tags == ["support"] and b1.metadata == {"plan": "free"}
    assert isinstance(b1.duration_ms, float)
    assert {row.session_id for row in client.sessions(PROJECT, user_id="alice")} == {"a1", "a2", "a3"}
    assert [row.session_id for row in client.sessions(PROJECT, has_error=True)] == [FAILING_SESSION]
    assert {row.session_id for row in client.sessions(PROJECT, metadata={"plan": "pro"})} == {
        "a1",
        "a2",
        "a3",
    }
    assert len(list(client.sessions(PROJECT, tag="support"))) == len(SESSIONS)
    assert list(client.sessions(PROJECT, tag="billing")) == []
    by_turns = [row.session_id for row in client.sessions(PROJECT, sort="turns", order="desc", limit=2)]
    assert by_turns[0] == "b1" and len(by_turns) == 2
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert list(client.sessions(PROJECT, start=later)) == []
    assert len(list(client.sessions(PROJECT, end=later))) == len(SESSIONS)
    assert len(list(client.sessions(PROJECT, status="active"))) == len(SESSIONS)


def test_paging_fetches_lazily_over_many_pages(filled: Filled):
    requests = []

    class Counting(spanloom.Client):
        def _send(self, request):
            requests.append(dict(request.params))
            return super()._send(request)

    client = Counting(filled.server.url, api_key=READ)
    sessions = client.sessions(PROJECT, page_size=2)
    assert requests == []  # nothing fetched before iterating
    first = next(iter(sessions))
    assert len(requests) == 1 and first.session_id in SESSIONS
    ids = [row.session_id for row in sessions]
    assert sorted(ids) == sorted(SESSIONS)  # each once, over three pages
    assert len(requests) == 3 and requests[1]["cursor"] and requests[0]["limit"] == "2"
    assert [row.session_id for row in sessions] == ids and len(requests) == 3  # kept, not fetched again
    limited = [row.session_id for row in client.sessions(PROJECT, page_size=2, limit=3)]
    assert limited == ids[:3] and requests[-1]["limit"] == "1"  # asks for no more than it keeps
    assert list(client.sessions(PROJECT, limit=0)) == []
    traces = client.traces(PROJECT, page_size=3)
    assert len(list(traces)) == TURNS
    spans = client.spans(PROJECT, page_size=4).to_list()
    assert len(spans) == 2 * TURNS and len({(s.trace_id, s.span_id) for s in spans}) == 2 * TURNS
    client.close()


def test_session_with_all_its_turns(client: spanloom.Client):
    detail = client.session("b1", PROJECT)
    assert isinstance(detail, SessionDetail) and detail.user_id == "bob"
    assert [turn.input for turn in detail.turns] == CONVERSATIONS["bob"]["b1"]
    assert [turn.output for turn in detail.turns] == [f"Answer to {m}" for m in CONVERSATIONS["bob"]["b1"]]
    assert all(turn.total_tokens == 15 and turn.span_count == 2 for turn in detail.turns)
    assert client.session("b1").session_id == "b1"  # one project holds it: no project needed


def test_more_turns_than_a_page(filled: Filled, client: spanloom.Client, monkeypatch: pytest.MonkeyPatch):
    from spanloom.client import api

    monkeypatch.setattr(api, "TURNS_PER_PAGE", 1)
    assert [turn.input for turn in client.session("b1", PROJECT).turns] == CONVERSATIONS["bob"]["b1"]


def test_users_and_user(client: spanloom.Client):
    users = {user.user_id: user for user in client.users(PROJECT)}
    assert set(users) == {"alice", "bob"}
    assert isinstance(users["bob"], User) and users["bob"].session_count == 2
    assert users["bob"].error_count == 1 and isinstance(users["bob"].error_rate, float)
    alice = client.user("alice", PROJECT)
    assert isinstance(alice, User) and alice.session_count == 3 and alice.trace_count == 4
    assert alice.last_seen >= alice.first_seen


def test_traces_and_trace_with_all_spans(client: spanloom.Client, monkeypatch: pytest.MonkeyPatch):
    traces = client.traces(PROJECT, session_id="b1").to_list()
    assert len(traces) == 3 and all(isinstance(trace, Trace) for trace in traces)
    (failing,) = client.traces(PROJECT, status="ERROR").to_list()
    assert failing.session_id == FAILING_SESSION and failing.error_count == 1
    assert len(client.traces(PROJECT, model="gpt-4o-mini").to_list()) == TURNS
    detail = client.trace(failing.trace_id)
    assert isinstance(detail, TraceDetail) and detail.span_count == 2
    assert [span.name for span in detail.spans] == ["turn", "llm"]
    llm = detail.spans[1]
    assert isinstance(llm, Span) and llm.parent_span_id == detail.spans[0].span_id
    assert llm.status_code == "ERROR" and llm.status_message == "model timed out"
    assert llm.model == "gpt-4o-mini" and llm.prompt_tokens == 10 and llm.attributes
    from spanloom.client import api

    monkeypatch.setattr(api, "SPANS_PER_PAGE", 1)  # the spans come a page at a time
    assert [span.span_id for span in client.trace(failing.trace_id).spans] == [
        s.span_id for s in detail.spans
    ]
    with pytest.raises(SpanloomClientError) as error:
        client.trace(failing.trace_id, project="elsewhere")
    assert error.value.status == 404


def test_spans_filtered(client: spanloom.Client):
    spans = client.spans(PROJECT, span_kind="llm").to_list()
    assert len(spans) == TURNS and {span.span_kind for span in spans} == {"LLM"}
    starts = [span.start_time for span in spans]
    assert starts == sorted(starts)
    assert client.spans(PROJECT, start=starts[-1]).to_list()[0].start_time == starts[-1]
    assert client.spans("no-such-project").to_list() == []


def test_evaluations_sent_and_read_back(client: spanloom.Client, filled: Filled):
    (b1_first, *_) = client.session("b1", PROJECT).turns
    writer = SpanloomClient(filled.server.url, api_key=INGEST)  # the older name, the same client
    answer = writer.log_evaluations(
        [
            {"trace_id": b1_first.trace_id, "name": "helpful", "score": 0.25},
            {"trace_id": "ab" * 16, "name": "helpful", "score": 1},
        ]
    )
    assert answer["accepted"] == 1 and [item["index"] for item in answer["rejected"]] == [1]
    groups = client.evaluation_summary("session", project=PROJECT, name="helpful").to_list()
    (group,) = [group for group in groups if group.key == "b1"]
    assert isinstance(group, EvaluationGroup) and group.group_by == "session" and group.count == 1
    assert group.mean_score == 0.25 and isinstance(group.worst, Evaluation) and group.worst.score == 0.25
    turn = client.session("b1", PROJECT).turns[0]
    assert turn.evaluations[0].name == "helpful" and turn.evaluations[0].time.tzinfo is not None
    frame = client.evaluation_summary("user", project=PROJECT, name="helpful").to_pandas()
    assert list(frame["key"]) == ["bob"] and frame["mean_score"].dtype == "float64"


def test_pandas_dtypes(client: spanloom.Client):
    frame = client.sessions(PROJECT, page_size=2).to_pandas()
    assert len(frame) == len(SESSIONS)
    assert (
        isinstance(frame["start_time"].dtype, pd.DatetimeTZDtype) and str(frame["start_time"].dt.tz) == "UTC"
    )
    assert frame["trace_count"].dtype == "Int64" and frame["total_tokens"].dtype == "Int64"
    assert frame["duration_ms"].dtype == "float64" and frame["cost"].dtype == "float64"
    assert frame["session_id"].dtype == "string"
    assert frame.groupby("user_id")["trace_count"].sum().to_dict() == {"alice": 4, "bob": 4}
    spans = client.spans(PROJECT).to_pandas()
    assert spans["prompt_tokens"].dtype == "Int64" and spans["prompt_tokens"].isna().sum() == TURNS
    assert isinstance(spans["end_time"].dtype, pd.DatetimeTZDtype)
    empty = client.sessions(PROJECT, tag="billing").to_pandas()
    assert len(empty) == 0 and isinstance(empty["start_time"].dtype, pd.DatetimeTZDtype)


def test_polars_dtypes(client: spanloom.Client):
    frame = client.traces(PROJECT).to_polars()
    assert frame.height == TURNS
    assert frame.schema["start_time"] == pl.Datetime("us", "UTC")
    assert frame.schema["span_count"] == pl.Int64 and frame.schema["latency_ms"] == pl.Float64
    assert frame.schema["tags"] == pl.List(pl.String) and frame.schema["metadata"] == pl.String
    per_user = dict(frame.group_by("user_id").agg(pl.col("total_tokens").sum()).iter_rows())
    assert per_user == {"alice": 60, "bob": 60}
    users = client.users(PROJECT).to_polars()
    assert users.schema["error_rate"] == pl.Float64 and users.schema["last_seen"] == pl.Datetime("us", "UTC")


def test_missing_dataframe_library_names_the_extra(client: spanloom.Client, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(__import__("sys").modules, "polars", None)
    with pytest.raises(ImportError, match=r"pip install 'spanloom\[polars\]'"):
        client.projects().to_polars()


def test_errors_carry_status_and_message(filled: Filled, client: spanloom.Client):
    with pytest.raises(SpanloomClientError) as missing:
        client.session("nobody", PROJECT)
    assert (
        missing.value.status == 404
        and missing.value.code == "not_found"
        and "nobody" in missing.value.message
    )
    with pytest.raises(SpanloomClientError) as bad:
        client.sessions(PROJECT, sort="shoe size").to_list()
    assert bad.value.status == 400 and "sort" in str(bad.value)
    for cursor in ("garbage", client_cursor(filled, "/api/traces")):
        answer = filled.server.client.get("/api/spans", params={"cursor": cursor}, headers=bearer(READ))
        assert answer.status_code == 400 and "cursor" in answer.json()["error"]["message"]
    with pytest.raises(SpanloomClientError) as unknown_key:
        spanloom.Client(filled.server.url, api_key="wrong-key-0123456789").projects().to_list()
    assert unknown_key.value.status == 401
    with pytest.raises(SpanloomClientError) as ingest_only:
        spanloom.Client(filled.server.url, api_key=INGEST).sessions(PROJECT).to_list()
    assert ingest_only.value.status == 403
    scoped = spanloom.Client(filled.server.url, api_key=OTHER_READ)
    assert scoped.projects().to_list() == []
    with pytest.raises(SpanloomClientError) as hidden:
        scoped.sessions(PROJECT).to_list()
    assert hidden.value.status == 404  # another project's data answers as missing
    assert scoped.spans().to_list() == []
    with pytest.raises(SpanloomClientError) as down:
        spanloom.Client("http://127.0.0.1:9", api_key=READ).projects().to_list()
    assert down.value.status is None and "cannot reach" in str(down.value)


def test_default_server_is_the_sdks(filled: Filled, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SPANLOOM_ENDPOINT", f"{filled.server.url}/v1/traces")
    monkeypatch.setenv("SPANLOOM_API_KEY", READ)
    from spanloom.sdk import destination

    monkeypatch.setattr(destination, "_registered", None)
    client = spanloom.Client()
    assert client.base_url == filled.server.url
    assert client.projects().to_list()[0].name == PROJECT
    monkeypatch.delenv("SPANLOOM_ENDPOINT")
    monkeypatch.delenv("SPANLOOM_API_KEY")
    assert spanloom.Client().base_url == "http://127.0.0.1:4318"


def test_async_twin(filled: Filled):
    async def read() -> tuple[list[str], SessionDetail, pd.DataFrame]:
        async with spanloom.AsyncClient(filled.server.url, api_key=READ) as client:
            ids = [session.session_id async for session in client.sessions(PROJECT, page_size=2)]
            detail = await client.session("a1", PROJECT)
            frame = await client.users(PROJECT).to_pandas()
            return ids, detail, frame

    ids, detail, frame = asyncio.run(read())
    assert sorted(ids) == sorted(SESSIONS)
    assert [turn.input for turn in detail.turns] == CONVERSATIONS["alice"]["a1"]
    assert frame["session_count"].dtype == "Int64" and len(frame) == 2
