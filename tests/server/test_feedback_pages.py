"""The dashboard's view of feedback, session status and judgements of whole conversations, on a
real server: thumbs on turns and sessions, the results at the top of a session page with links
to the turns they point at, status and feedback columns and filters in the lists; end-user and
judge text that tries to become markup stays text."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from _server_kit import BASE_TIME_NS, RunningServer, make_request, make_turn, run_server

HOSTILE = '<script>alert(1)</script> "><img src=x onerror=alert(2)>'


class World(NamedTuple):
    server: RunningServer
    turns: list[str]  # conv's trace ids, in order


def _send(server: RunningServer, spans: list, project: str = "shop") -> None:
    assert server.post_spans(make_request(spans, {"project.name": project})).status_code == 200


def _post(server: RunningServer, path: str, body: object) -> None:
    response = server.client.post(path, json=body)
    assert response.status_code == 200, response.text


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with run_server(tmp_path / "pages.db") as server:
        turns = []
        for index, question in enumerate(("hi", "where is my order?", "where is my order??")):
            trace, spans = make_turn("conv", "alice", index * 1000, question=question, answer=f"re {index}")
            turns.append(trace.hex())
            _send(server, spans)
        _, spans = make_turn("done", "bob", 10_000)
        _send(server, spans)
        # A turn a moment ago: this conversation is still active.
        _, spans = make_turn("live", "bob", (time.time_ns() - BASE_TIME_NS) / 1e6 - 1000)
        _send(server, spans)
        _post(server, "/api/sessions/done/end?project=shop", None)
        _post(
            server,
            "/api/feedback",
            [
                {"id": "f1", "trace_id": turns[1], "score": -1, "comment": HOSTILE, "user_id": "alice"},
                {"id": "f2", "trace_id": turns[0], "score": 1},
                {"id": "f3", "session_id": "conv", "project": "shop", "score": 1, "label": "thanks"},
                {"id": "f4", "session_id": "done", "project": "shop", "score": 1},
            ],
        )
        _post(
            server,
            "/api/evaluations",
            [
                {
                    "session_id": "conv",
                    "project": "shop",
                    "name": "repeated_question",
                    "label": "fail",
                    "explanation": f"asked twice {HOSTILE}",
                    "details": {"turns": [2, 3], "trace_ids": turns[1:]},
                }
            ],
        )
        yield World(server, turns)


def _page(server: RunningServer, path: str, **params: object) -> str:
    response = server.get(path, **params)
    assert response.status_code == 200, response.text
    return response.text


def _assert_escaped(page: str) -> None:
    assert "<script>alert" not in page and "<img src=x" not in page
    assert html.escape(HOSTILE, quote=False).split('"')[0] in page


def _row(page: str, session_id: str) -> str:
    """The sessions table row whose first cell links `session_id`."""
    for row in re.findall(r"<tr.*?</tr>", page, flags=re.S):
        if re.search(rf'href="/sessions/{re.escape(session_id)}\?project=shop"', row):
            return row
    raise AssertionError(f"no row for {session_id}")


def test_session_page_shows_status_feedback_and_results(world: World):
    page = _page(world.server, "/sessions/conv", project="shop")
    assert 'data-status="idle"' in page.split("</h1>")[0]
    results = page.split('class="session-results"')[1].split("</section>")[0]
    assert 'data-eval="repeated_question"' in results and "asked twice" in results
    assert 'href="#turn-2">2</a>' in results and 'href="#turn-3">3</a>' in results
    assert 'data-thumb="up"' in results and "thanks" in results  # the session's own feedback
    turn_two = page.split('id="turn-2"')[1].split('id="turn-3"')[0]
    assert 'data-thumb="down"' in turn_two and "— alice" in turn_two
    turn_one = page.split('id="turn-1"')[1].split('id="turn-2"')[0]
    assert 'data-thumb="up"' in turn_one and 'data-thumb="down"' not in turn_one
    # Thumbs are feedback, not evaluator badges.
    assert 'data-eval="feedback"' not in page
    stats = page.split('class="stats"')[1].split("</dl>")[0]
    assert "👍 2" in stats and "👎 1" in stats
    _assert_escaped(page)


def test_a_result_points_at_turns_on_other_pages_through_their_traces(world: World):
    page = _page(world.server, "/sessions/conv", project="shop", limit=2)
    results = page.split('class="session-results"')[1].split("</section>")[0]
    assert 'href="#turn-2">2</a>' in results
    assert f'href="/traces/{world.turns[2]}">3</a>' in results


def test_session_list_status_and_feedback(world: World):
    page = _page(world.server, "/sessions", project="shop")
    assert 'data-status="idle"' in _row(page, "conv")
    assert 'data-status="ended"' in _row(page, "done")
    assert 'data-status="active"' in _row(page, "live")
    assert 'data-ups="2" data-downs="1"' in _row(page, "conv")
    assert 'data-ups="1" data-downs="0"' in _row(page, "done")
    assert "—" in _row(page, "live").split("feedback-cell")[1][:20]
    ended = _page(world.server, "/sessions", project="shop", status="ended")
    assert re.findall(r'href="/sessions/([^?"]+)\?', ended) == ["done"]
    assert '<option value="ended" selected>' in ended
    negative = _page(world.server, "/sessions", project="shop", has_negative_feedback="true")
    assert re.findall(r'href="/sessions/([^?"]+)\?', negative) == ["conv"]
    # Worst feedback first: conv (2 of 3 up) before done (all up); live has none and comes last.
    worst = _page(world.server, "/sessions", project="shop", sort="feedback", order="asc")
    assert re.findall(r'href="/sessions/([^?"]+)\?', worst) == ["conv", "done", "live"]
    assert '<option value="eval:feedback" selected>' in worst
    assert re.search(r'<th[^>]*aria-sort="ascending">\s*<a[^>]*>Feedback ▲', worst)


def test_user_pages_show_feedback(world: World):
    users = _page(world.server, "/users", project="shop")
    alice = next(row for row in re.findall(r"<tr.*?</tr>", users, flags=re.S) if "/users/alice" in row)
    assert 'data-ups="2" data-downs="1"' in alice
    negative = _page(world.server, "/users", project="shop", has_negative_feedback="true")
    assert re.findall(r'<td class="id"><a href="/users/([^?"]+)\?', negative) == ["alice"]
    user = _page(world.server, "/users/alice", project="shop")
    assert "👎 1" in user.split('class="stats"')[1].split("</dl>")[0]
    assert 'data-status="idle"' in _row(user, "conv")


def test_bad_status_is_a_clear_error(world: World):
    response = world.server.get("/sessions", status="sleeping")
    assert response.status_code == 400 and "status" in response.text
