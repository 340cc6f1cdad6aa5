"""`Client.evaluations()`: individual results, one row each, read back from a real server after
they were sent through `log_evaluations` and end users' feedback (`POST /api/feedback`): on spans,
whole turns and whole sessions; filters, paging, both DataFrame flavours, a scoped key."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd
import polars as pl
import pytest
from _client_kit import INGEST, OTHER_READ, PROJECT, READ, Filled, bearer, say, traced_provider
from _server_kit import wait_for

import spanloom
from spanloom.client import EvaluationGroup, EvaluationResult, SpanloomClientError

OTHER_PROJECT = "elsewhere"  # OTHER_READ's one project
BASE = 1_800_000_000  # Unix seconds: the "time" of the i-th turn's result is BASE + i


@dataclass
class Judged:
    filled: Filled
    turns: dict[str, list[str]]  # session id -> its turns' trace ids, in order
    llm_span: str  # the LLM span of b1's first turn
    other_trace: str  # the one turn of OTHER_PROJECT


def _turns(client: spanloom.Client, session_id: str) -> list[str]:
    return [turn.trace_id for turn in client.session(session_id, PROJECT).turns]


@pytest.fixture(scope="module")
def judged(filled: Filled) -> Judged:
    server = filled.server
    other = traced_provider(server, OTHER_PROJECT)
    try:
        say(other, "e1", "eve", "Hello there")
        with spanloom.Client(server.url, api_key=READ) as reader:
            wait_for(lambda: reader.traces(OTHER_PROJECT).to_list(), what="the other project's turn")
            turns = {session_id: _turns(reader, session_id) for session_id in ("a1", "a2", "a3", "b1", "b2")}
            (other_trace,) = [trace.trace_id for trace in reader.traces(OTHER_PROJECT)]
            first = reader.trace(turns["b1"][0], PROJECT)
            (llm_span,) = [span.span_id for span in first.spans if span.span_kind == "LLM"]
    finally:
        other.shutdown()
    ordered = [trace for session_id in sorted(turns) for trace in turns[session_id]]
    with spanloom.Client(server.url, api_key=INGEST) as writer:
        helpful = [
            {"trace_id": trace, "name": "helpful", "score": index / 10, "time": BASE + index}
            for index, trace in enumerate(ordered)
        ]
        answers = [
            writer.log_evaluations(
                [
                    *helpful,
                    {"span_id": llm_span, "trace_id": turns["b1"][0], "name": "grounded", "label": "pass"},
                    {"session_id": "b1", "project": PROJECT, "name": "resolved", "score": 1.0,
                     "label": "pass", "explanation": "refund done", "details": {"turns": [3]}},
                    {"session_id": "a2", "project": PROJECT, "name": "resolved", "score": 0.0},
                    {"trace_id": other_trace, "name": "helpful", "score": 0.5},
                ]
            ),
            # The same (span, name, source) again: it replaces the first.
            writer.log_evaluations([{"trace_id": turns["b1"][0], "name": "helpful", "score": 0.95}]),
        ]  # fmt: skip
    assert [answer["rejected"] for answer in answers] == [[], []]
    feedback = server.client.post(
        "/api/feedback",
        json=[
            {"id": "fb-1", "trace_id": turns["b1"][1], "project": PROJECT, "score": -1, "comment": "wrong"},
            {"id": "fb-2", "session_id": "a1", "project": PROJECT, "score": 1, "user_id": "alice"},
        ],
        headers=bearer(INGEST),
    )
    assert feedback.status_code == 200, feedback.text
    return Judged(filled, turns, llm_span, other_trace)


@pytest.fixture
def client(judged: Judged):
    with spanloom.Client(judged.filled.server.url, api_key=READ) as opened:
        yield opened


def _rows(results) -> set[tuple[object, ...]]:
    return {
        (r.level, r.session_id, r.user_id, r.trace_id, r.span_id, r.name, r.source, r.score) for r in results
    }


def test_every_result_is_one_typed_row_with_what_it_judges(client: spanloom.Client, judged: Judged):
    results = client.evaluations(PROJECT).to_list()
    assert all(isinstance(result, EvaluationResult) for result in results)
    assert all(result.project == PROJECT for result in results)
    turns = judged.turns
    users = {"a1": "alice", "a2": "alice", "a3": "alice", "b1": "bob", "b2": "bob"}
    ordered = [(session_id, trace) for session_id in sorted(turns) for trace in turns[session_id]]
    expected = {
        ("span", session_id, users[session_id], trace, None, "helpful", "api", index / 10)
        for index, (session_id, trace) in enumerate(ordered)
        if trace != turns["b1"][0]
    } | {
        ("span", "b1", "bob", turns["b1"][0], None, "helpful", "api", 0.95),  # replaced, once
        ("span", "b1", "bob", turns["b1"][0], judged.llm_span, "grounded", "api", None),
        ("session", "b1", "bob", None, None, "resolved", "api", 1.0),
        ("session", "a2", "alice", None, None, "resolved", "api", 0.0),
        ("trace", "b1", "bob", turns["b1"][1], None, "feedback", "feedback", -1.0),
        ("session", "a1", "alice", None, None, "feedback", "feedback", 1.0),
    }
    # The root span's id: results sent with a trace id alone are stored on it.
    rows = {
        (level, session, user, trace, None if name == "helpful" else span, name, source, score)
        for level, session, user, trace, span, name, source, score in _rows(results)
    }
    assert rows == expected
    assert len(results) == len(expected)
    helpful = [r for r in results if r.name == "helpful"]
    assert all(r.span_id is not None and len(r.span_id) == 16 for r in helpful)
    resolved = next(r for r in results if r.level == "session" and r.session_id == "b1")
    assert resolved.explanation == "refund done" and resolved.details == {"turns": [3]} and resolved.passed
    thumb = next(r for r in results if r.level == "trace")
    assert thumb.id == "fb-1" and thumb.explanation == "wrong" and thumb.passed is False
    first = next(r for r in helpful if r.score == 0.1)
    assert first.time == datetime.fromtimestamp(BASE + 1, timezone.utc)


def test_filters(client: spanloom.Client, judged: Judged):
    turns = judged.turns
    assert {r.name for r in client.evaluations(PROJECT, name="resolved")} == {"resolved"}
    assert len(client.evaluations(PROJECT, name="helpful").to_list()) == 8
    b1 = client.evaluations(PROJECT, session_id="b1").to_list()
    assert {r.session_id for r in b1} == {"b1"}
    assert sorted((r.level, r.name) for r in b1) == [
        ("session", "resolved"),
        ("span", "grounded"),
        ("span", "helpful"),
        ("span", "helpful"),
        ("span", "helpful"),
        ("trace", "feedback"),
    ]
    on_turn = client.evaluations(PROJECT, trace_id=turns["b1"][0]).to_list()
    assert sorted(r.name for r in on_turn) == ["grounded", "helpful"]
    (grounded,) = client.evaluations(PROJECT, span_id=judged.llm_span)
    assert grounded.name == "grounded" and grounded.label == "pass"
    assert {r.id for r in client.evaluations(PROJECT, source="feedback")} == {"fb-1", "fb-2"}
    # Recorded from the 3rd to the 6th turn's results (both bounds inclusive); the 5th was
    # replaced later, and is recorded at its replacement's time now.
    window = client.evaluations(
        PROJECT,
        name="helpful",
        start=datetime.fromtimestamp(BASE + 2, timezone.utc),
        end=BASE + 5,
    ).to_list()
    assert sorted(r.score for r in window) == [0.2, 0.3, 0.5]
    assert client.evaluations(PROJECT, session_id="no-such-session").to_list() == []


def test_paging_over_several_pages(client: spanloom.Client, judged: Judged):
    server = judged.filled.server
    first = server.client.get(
        "/api/evaluations", params={"project": PROJECT, "limit": 5}, headers=bearer(READ)
    )
    assert first.status_code == 200 and len(first.json()["items"]) == 5 and first.json()["next_cursor"]
    whole = client.evaluations(PROJECT, page_size=1000).to_list()
    paged = client.evaluations(PROJECT, page_size=5).to_list()
    assert len(whole) == 13 and paged == whole
    keys = [(r.level, r.trace_id, r.span_id, r.session_id, r.name, r.source, r.id) for r in paged]
    assert len(set(keys)) == len(keys)
    assert client.evaluations(PROJECT, page_size=3, limit=7).to_list() == whole[:7]


def test_dataframes_have_typed_columns(client: spanloom.Client):
    frame = client.evaluations(PROJECT, page_size=4).to_pandas()
    assert len(frame) == 13
    assert isinstance(frame["time"].dtype, pd.DatetimeTZDtype) and str(frame["time"].dt.tz) == "UTC"
    assert frame["score"].dtype == "float64" and frame["score"].isna().sum() == 1  # grounded: a label
    for column in ("level", "project", "trace_id", "session_id", "user_id", "name", "source", "label"):
        assert frame[column].dtype == "string", column
    assert frame["passed"].dtype == "boolean"
    means = frame[frame["name"] == "helpful"].groupby("user_id")["score"].mean().round(4).to_dict()
    assert means == {
        "alice": round((0.0 + 0.1 + 0.2 + 0.3) / 4, 4),
        "bob": round((0.95 + 0.5 + 0.6 + 0.7) / 4, 4),
    }
    polars = client.evaluations(PROJECT, name="helpful").to_polars()
    assert polars.height == 8
    assert polars.schema["time"] == pl.Datetime("us", "UTC")
    assert polars.schema["score"] == pl.Float64 and polars.schema["name"] == pl.String
    assert polars.schema["passed"] == pl.Boolean and polars.schema["details"] == pl.String
    assert polars.group_by("user_id").len().sort("user_id").rows() == [("alice", 4), ("bob", 4)]
    empty = client.evaluations(PROJECT, name="nothing").to_pandas()
    assert len(empty) == 0 and isinstance(empty["time"].dtype, pd.DatetimeTZDtype)


def test_a_scoped_key_sees_only_its_project(judged: Judged):
    url = judged.filled.server.url
    with spanloom.Client(url, api_key=OTHER_READ) as scoped:
        (only,) = scoped.evaluations().to_list()
        assert (only.project, only.trace_id, only.session_id, only.user_id) == (
            OTHER_PROJECT,
            judged.other_trace,
            "e1",
            "eve",
        )
        with pytest.raises(SpanloomClientError) as refused:
            scoped.evaluations(PROJECT).to_list()
        assert refused.value.status == 404
    with spanloom.Client(url, api_key=READ) as everything:
        assert {r.project for r in everything.evaluations()} == {PROJECT, OTHER_PROJECT}


def test_the_async_client_reads_the_same(client: spanloom.Client, judged: Judged):
    async def read() -> list[EvaluationResult]:
        async with spanloom.AsyncClient(judged.filled.server.url, api_key=READ) as reader:
            return [result async for result in reader.evaluations(PROJECT, page_size=4)]

    assert asyncio.run(read()) == client.evaluations(PROJECT).to_list()


def test_the_summary_stays_for_aggregates(client: spanloom.Client):
    (b1,) = [
        group
        for group in client.evaluation_summary("session", project=PROJECT, name="helpful")
        if group.key == "b1"
    ]
    assert isinstance(b1, EvaluationGroup) and b1.count == 3
    assert b1.mean_score == pytest.approx((0.95 + 0.5 + 0.6) / 3)


def test_bad_parameters_answer_400(judged: Judged):
    server = judged.filled.server
    for params in (
        {"cursor": "nope"},
        {"limit": 1001},
        {"limit": 0},
        {"source": "robot"},
        {"start": "soon"},
        {"name": "x" * 201},
    ):
        answer = server.client.get("/api/evaluations", params=params, headers=bearer(READ))
        assert answer.status_code == 400, (params, answer.text)
        assert answer.json()["error"]["code"] == "bad_parameter"


def test_blank_filters_mean_not_given(judged: Judged):
    server = judged.filled.server
    params = {"project": PROJECT, "name": " ", "session_id": "", "source": "", "limit": 1000}
    answer = server.client.get("/api/evaluations", params=params, headers=bearer(READ))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["items"]) == 13
