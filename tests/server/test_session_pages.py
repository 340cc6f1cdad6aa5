"""A long session is read a page of turns at a time, in the API and on its page, and "where it
breaks" still opens the failing turn in one click, however far into the session it is."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from _server_kit import RunningServer, make_request, make_span, new_span_id, new_trace_id, run_server

TURNS = 250
FAILING = 180  # 0-based: "turn 181"


@pytest.fixture(scope="module")
def long_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("long") / "long.db") as server:
        spans = [
            make_span(
                new_trace_id(),
                new_span_id(),
                name="turn",
                start_ms=turn * 1000,
                attributes={"session.id": "long", "user.id": "u", "input.value": f"question {turn + 1}"},
                error=turn == FAILING,
            )
            for turn in range(TURNS)
        ]
        assert server.post_spans(make_request(spans)).status_code == 200
        yield server


def test_the_api_pages_turns_both_ways(long_session: RunningServer):
    first = long_session.get_json("/api/sessions/long")
    assert first["trace_count"] == TURNS
    assert (len(first["turns"]), first["turns_offset"], first["previous_cursor"]) == (100, 0, None)
    failing = first["first_failing_turn"]
    assert (failing["index"], failing["reason"]) == (FAILING, "error")
    seen, page = list(first["turns"]), first
    while page["next_cursor"]:
        page = long_session.get_json("/api/sessions/long", cursor=page["next_cursor"])
        assert page["turns_offset"] == len(seen)
        seen += page["turns"]
    assert [turn["input"] for turn in seen] == [f"question {n}" for n in range(1, TURNS + 1)]
    back = long_session.get_json("/api/sessions/long", cursor=page["previous_cursor"])
    assert back["turns_offset"] == 100 and back["next_cursor"]
    at = long_session.get_json("/api/sessions/long", cursor=failing["cursor"], limit=3)
    assert at["turns_offset"] == FAILING and at["turns"][0]["trace_id"] == failing["trace_id"]


@pytest.mark.parametrize("params", [{"limit": "501"}, {"limit": "0"}, {"cursor": "nope"}])
def test_turn_parameters_are_bounded(long_session: RunningServer, params: dict[str, str]):
    response = long_session.client.get("/api/sessions/long", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(next(iter(params)))
    assert long_session.client.get("/sessions/long", params=params).status_code == 400


def test_the_page_shows_a_page_of_turns_and_breaks_one_click_away(long_session: RunningServer):
    text = long_session.client.get("/sessions/long").text
    numbers = [int(n) for n in re.findall(r'<li id="turn-(\d+)" class="turn', text)]
    assert numbers == list(range(1, 101))
    assert "turns 1\u2013100 of 250" in text
    assert 'rel="prev"' not in text
    newer = html.unescape(re.search(r'rel="next" href="([^"]+)"', text)[1])
    breaks = html.unescape(re.search(r'id="where-it-breaks" href="([^"]+)"', text)[1])
    assert breaks.endswith(f"#turn-{FAILING + 1}") and "cursor=" in breaks
    page = long_session.client.get(breaks.split("#")[0])
    assert page.status_code == 200
    turn = f'<li id="turn-{FAILING + 1}" class="turn failed error first-failure" data-failed="error">'
    assert turn in page.text
    assert f'<ol class="transcript" start="{FAILING + 1}">' in page.text
    # On that page the link points at the turn itself.
    assert f'id="where-it-breaks" href="#turn-{FAILING + 1}"' in page.text
    second = long_session.client.get(newer).text
    assert [int(n) for n in re.findall(r'<li id="turn-(\d+)" class="turn', second)][:1] == [101]
    assert 'rel="prev"' in second


def test_a_session_that_fits_one_page_has_no_pager(tmp_path: Path):
    with run_server(tmp_path / "short.db") as server:
        span = make_span(new_trace_id(), new_span_id(), attributes={"session.id": "short"})
        assert server.post_spans(make_request([span])).status_code == 200
        text = server.client.get("/sessions/short").text
        assert "turns-pager" not in text and '<li id="turn-1"' in text
        detail = server.get_json("/api/sessions/short")
        assert (detail["next_cursor"], detail["previous_cursor"], detail["turns_offset"]) == (None, None, 0)


# "100%41": a `%` that makes a valid escape, which no client repairs ("100%" alone, httpx does)
@pytest.mark.parametrize("session_id", ["a?b=c", "x#y", "100%", "100%41", "slash/ed"])
def test_turn_links_keep_a_hostile_session_id_whole(tmp_path: Path, session_id: str):
    with run_server(tmp_path / "hostile.db") as server:
        spans = [
            make_span(new_trace_id(), new_span_id(), start_ms=n, attributes={"session.id": session_id})
            for n in range(3)
        ]
        assert server.post_spans(make_request(spans)).status_code == 200
        text = server.client.get(f"/sessions/{quote(session_id, safe='')}", params={"limit": 1}).text
        newer = html.unescape(re.search(r'rel="next" href="([^"]+)"', text)[1])
        second = server.client.get(newer)
        assert second.status_code == 200, newer
        assert '<li id="turn-2"' in second.text and html.escape(session_id) in second.text
        # the page for a bad parameter: its project picker comes back to this session
        bad = server.client.get(f"/sessions/{quote(session_id, safe='')}", params={"limit": "0"})
        picker = re.search(r'class="project-picker" method="get" action="([^"]+)"', bad.text)
        action = html.unescape(picker[1])
        assert (bad.status_code, server.client.get(action).status_code) == (400, 200), action
