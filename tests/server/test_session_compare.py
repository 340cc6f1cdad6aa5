"""Two sessions side by side: GET /api/sessions/compare and the /sessions/compare page, and the
links between a replay and its original on the session pages.

A real server with keys, filled through the SDK (_compare_kit): an original, a replay of it whose
answers differ, whose third turn fails and whose evaluations got worse, a shorter replay, the
original's id in a second project, and sessions with hostile text.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from _compare_kit import (
    FAILING_TURN,
    IMG,
    ONLY_IN_OTHER,
    ORIGINAL,
    ORIGINAL_ANSWERS,
    OTHER_PROJECT,
    PROJECT,
    QUESTIONS,
    REPLAY,
    REPLAY_ANSWERS,
    SCRIPT,
    SHORT_REPLAY,
    XSS_A,
    XSS_B,
    Conversation,
    Turn,
    fill,
    simulated_clock,
    trace_conversations,
)
from _server_kit import RunningServer, run_server
from markupsafe import escape

from spanloom.server.compare_params import MAX_COMPARE_TURNS
from spanloom.server.session_compare import MAX_REPLAYS_LISTED

ADMIN = "compare-admin-key-0123456789"
INGEST = "compare-ingest-key-012345678"
READ = "compare-read-key-01234567890"
P1_READ = "compare-p1-read-key-0123456"
MANY_REPLAYED = "often-replayed"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("compare")
    keys = [
        {"key": ADMIN, "role": "admin", "projects": "*"},
        {"key": INGEST, "role": "ingest", "projects": "*"},
        {"key": READ, "role": "read", "projects": "*"},
        {"key": P1_READ, "role": "read", "projects": [PROJECT]},
    ]
    keys_file = directory / "keys.json"
    keys_file.write_text(json.dumps({"keys": keys}))
    with run_server(directory / "compare.db", keys_file=keys_file, backend=store_backend) as running:
        start_ns = time.time_ns() - 3 * 3600 * 10**9
        fill(running.url, start_ns, bearer(INGEST), ADMIN)
        # More replays of one session than its page lists.
        many = [Conversation(PROJECT, MANY_REPLAYED, [Turn("hello", "hi")])] + [
            Conversation(PROJECT, f"again-{n:02}", [Turn("hello", f"hi {n}")], {"replay_of": MANY_REPLAYED})
            for n in range(MAX_REPLAYS_LISTED + 1)
        ]
        with simulated_clock(start_ns + 2 * 3600 * 10**9) as clock:
            trace_conversations(running.traces_endpoint, many, clock, bearer(INGEST))
        yield running


def get(server: RunningServer, path: str, key: str = READ, **params: Any) -> Any:
    return server.client.get(path, params=params, headers=bearer(key))


def compare_json(server: RunningServer, key: str = READ, **params: Any) -> dict[str, Any]:
    response = get(server, "/api/sessions/compare", key, **params)
    assert response.status_code == 200, response.text
    return response.json()


def test_turn_by_turn_with_what_differs(server: RunningServer):
    body = compare_json(server, project=PROJECT, a=ORIGINAL, b=REPLAY)
    assert body["a"]["session_id"] == ORIGINAL and body["b"]["session_id"] == REPLAY
    assert body["b"]["metadata"] == {"replay_of": ORIGINAL}
    turns = body["turns"]
    assert len(turns) == len(QUESTIONS)
    for index, pair in enumerate(turns):
        assert pair["a"]["number"] == pair["b"]["number"] == index + 1
        assert pair["a"]["input"] == pair["b"]["input"] == QUESTIONS[index]
        assert (pair["a"]["output"], pair["b"]["output"]) == (ORIGINAL_ANSWERS[index], REPLAY_ANSWERS[index])
        assert pair["input_differs"] is False
        assert pair["output_differs"] is (ORIGINAL_ANSWERS[index] != REPLAY_ANSWERS[index])

    # Turn 2: slower and longer in B; turn 4: faster and shorter. Latency is the agent span's
    # duration: the simulated clock makes the delta exactly the model's difference.
    slower, faster = turns[1], turns[3]
    assert slower["latency_ms"]["delta"] == pytest.approx(500, abs=1)
    assert slower["latency_ms"]["direction"] == "worse"
    assert slower["total_tokens"] == {"a": 120, "b": 135, "delta": 15, "direction": "worse"}
    assert faster["latency_ms"]["direction"] == "better"
    assert faster["total_tokens"]["direction"] == "better"
    assert turns[0]["total_tokens"]["direction"] == "same"

    # Turn 3 fails in B: an error, and helpfulness passed in A and fails in B.
    failing = turns[FAILING_TURN - 1]
    assert failing["a"]["error_count"] == 0 and failing["b"]["error_count"] == 1
    assert failing["b"]["status"] == "ERROR"
    assert failing["error_count"]["direction"] == "worse"
    assert failing["regressed"] is True
    (helpfulness,) = [e for e in failing["evaluations"] if e["name"] == "helpfulness"]
    assert helpfulness["a"]["score"] == 0.9 and helpfulness["b"]["score"] == 0.2
    assert helpfulness["change"] == "regressed"
    assert [t["regressed"] for t in turns] == [n == FAILING_TURN for n in range(1, 6)]
    changes = {e["name"]: e["change"] for e in turns[0]["evaluations"]}
    assert changes == {"helpfulness": "same", "tone": "same"}

    # The conversation as a whole: goal_met yes in A, no in B.
    (goal,) = body["session_results"]
    assert (goal["name"], goal["a"]["label"], goal["b"]["label"], goal["change"]) == (
        "goal_met",
        "yes",
        "no",
        "regressed",
    )
    totals = body["totals"]
    assert totals["trace_count"] == {"a": 5, "b": 5, "delta": 0, "direction": None}
    assert totals["error_count"]["a"] == 0 and totals["error_count"]["b"] == 1
    assert totals["error_count"]["direction"] == "worse"
    assert totals["total_tokens"]["delta"] == 15 - 8  # turn 2 +15, turn 4 -8
    summary = body["evaluation_summary"]
    assert summary["helpfulness"]["headline"]["direction"] == "worse"
    assert summary["helpfulness"]["headline_is"] == "mean_score"
    # goal_met has labels only: its pass rate is the figure compared.
    assert summary["goal_met"]["headline_is"] == "pass_rate"
    assert summary["goal_met"]["headline"] == {"a": 1.0, "b": 0.0, "delta": -1.0, "direction": "worse"}
    assert summary["goal_met"]["a"]["pass_rate"] == 1.0 and summary["goal_met"]["b"]["pass_rate"] == 0.0
    assert body["next"] is None


def test_unequal_lengths_show_missing_turns(server: RunningServer):
    turns = compare_json(server, project=PROJECT, a=ORIGINAL, b=SHORT_REPLAY)["turns"]
    assert len(turns) == 5
    assert [pair["b"] is None for pair in turns] == [False, False, False, True, True]
    assert turns[4]["a"]["number"] == 5
    assert turns[4]["latency_ms"]["b"] is None
    assert turns[4]["latency_ms"]["delta"] is None and turns[4]["latency_ms"]["direction"] is None
    assert turns[4]["evaluations"][0]["change"] == "only_a"
    swapped = compare_json(server, project=PROJECT, a=SHORT_REPLAY, b=ORIGINAL)["turns"]
    assert [pair["a"] is None for pair in swapped] == [False, False, False, True, True]


def test_pages_of_turns_stay_side_by_side(server: RunningServer):
    seen: list[tuple[int | None, int | None]] = []
    params: dict[str, Any] = {"project": PROJECT, "a": ORIGINAL, "b": SHORT_REPLAY, "limit": 2}
    pages = 0
    while True:
        body = compare_json(server, **params)
        pages += 1
        assert len(body["turns"]) <= 2
        seen += [(p["a"] and p["a"]["number"], p["b"] and p["b"]["number"]) for p in body["turns"]]
        if body["next"] is None:
            break
        params.update(a_cursor=body["next"]["a_cursor"], b_cursor=body["next"]["b_cursor"])
        assert pages < 10
    assert pages == 3
    assert seen == [(1, 1), (2, 2), (3, 3), (4, None), (5, None)]
    # The short side ran out after page 2: its cursor said so.
    assert params["b_cursor"] == "end"


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"limit": MAX_COMPARE_TURNS + 1}, "limit"),
        ({"limit": 0}, "limit"),
        ({"a_cursor": "not-a-cursor"}, "a_cursor"),
        ({"b_cursor": "eyJ4Ijox"}, "b_cursor"),
    ],
)
def test_bad_parameters_are_400(server: RunningServer, params: dict[str, Any], names: str):
    response = get(server, "/api/sessions/compare", project=PROJECT, a=ORIGINAL, b=REPLAY, **params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_parameter"
    assert names in response.json()["error"]["message"]
    page = get(server, "/sessions/compare", project=PROJECT, a=ORIGINAL, b=REPLAY, **params)
    assert page.status_code == 400


def test_both_ids_required(server: RunningServer):
    response = get(server, "/api/sessions/compare", project=PROJECT, a=ORIGINAL)
    assert response.status_code == 400
    assert "both session ids" in response.json()["error"]["message"]


def test_ids_resolve_as_the_session_route_does(server: RunningServer):
    # ORIGINAL is in both projects: without project= it is ambiguous to a key that reads both,
    # exactly as on /api/sessions/{id}.
    both = get(server, "/api/sessions/compare", a=ORIGINAL, b=REPLAY)
    detail = get(server, f"/api/sessions/{ORIGINAL}")
    assert both.status_code == detail.status_code == 409
    assert both.json()["error"]["projects"] == detail.json()["error"]["projects"] == [PROJECT, OTHER_PROJECT]
    assert get(server, "/sessions/compare", a=ORIGINAL, b=REPLAY).status_code == 409
    # A key for one project resolves it there, never learning of the other.
    scoped = compare_json(server, P1_READ, a=ORIGINAL, b=REPLAY)
    assert scoped["a"]["project"] == PROJECT
    # An id held by one project resolves to it.
    assert compare_json(server, a=REPLAY, b=ORIGINAL)["a"]["project"] == PROJECT


def test_another_projects_sessions_answer_like_unknown_ones(server: RunningServer):
    def answer(key: str, **params: Any) -> tuple[int, str, str]:
        response = get(server, "/api/sessions/compare", key, **params)
        error = response.json()["error"]
        return response.status_code, error["code"], error["message"]

    unknown = answer(P1_READ, a="no-such-session", b=REPLAY)
    foreign = answer(P1_READ, a=ONLY_IN_OTHER, b=REPLAY)
    assert unknown[:2] == foreign[:2] == (404, "not_found")
    assert foreign[2] == unknown[2].replace("no-such-session", ONLY_IN_OTHER)
    # Named outright, the other project is not found either, for a scoped key.
    assert answer(P1_READ, project=OTHER_PROJECT, a=ORIGINAL, b=ONLY_IN_OTHER)[:2] == (404, "not_found")
    # B is read in A's project: one of another project is not found, as an unknown one.
    assert answer(READ, project=PROJECT, a=ORIGINAL, b=ONLY_IN_OTHER)[2] == f"no session {ONLY_IN_OTHER!r}"
    assert answer(READ, project=PROJECT, a=ORIGINAL, b="nope")[2] == "no session 'nope'"
    # The page answers the same way.
    foreign_page = get(server, "/sessions/compare", P1_READ, a=ONLY_IN_OTHER, b=REPLAY)
    unknown_page = get(server, "/sessions/compare", P1_READ, a="no-such-session", b=REPLAY)
    assert foreign_page.status_code == unknown_page.status_code == 404
    assert "secret" not in foreign_page.text.replace(ONLY_IN_OTHER, "")
    # Without a key, nothing.
    assert server.client.get("/api/sessions/compare", params={"a": ORIGINAL, "b": REPLAY}).status_code == 401


def test_page_shows_both_conversations_and_marks_differences(server: RunningServer):
    response = get(server, "/sessions/compare", project=PROJECT, a=ORIGINAL, b=REPLAY)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    page = response.text
    assert page.count('class="turn-pair') == 5
    for answer in {*ORIGINAL_ANSWERS, *REPLAY_ANSWERS}:
        assert str(escape(answer)) in page
    assert page.count("output differs") == 3  # turns 2, 3 and 4
    assert page.count("regressed in B") == 1
    assert 'data-change="regressed"' in page and "passed in A, fails in B" in page
    assert 'data-total="error_count"' in page
    assert "Up to 25 turns of each per page" in page


def test_page_escapes_hostile_text_and_ids(server: RunningServer):
    page = get(server, "/sessions/compare", project=PROJECT, a=XSS_A, b=XSS_B).text
    assert SCRIPT not in page and IMG not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img" not in page
    # A session-level explanation (judge text) is escaped too.
    judged = get(server, "/sessions/compare", project=PROJECT, a=ORIGINAL, b=REPLAY).text
    assert SCRIPT not in judged and "judged &lt;script&gt;" in judged
    # The API gives the text as it is, as JSON.
    body = compare_json(server, project=PROJECT, a=XSS_A, b=XSS_B)
    assert SCRIPT in body["turns"][0]["a"]["input"]


def test_page_pages_through_turns(server: RunningServer):
    page = get(server, "/sessions/compare", project=PROJECT, a=ORIGINAL, b=SHORT_REPLAY, limit=2).text
    assert page.count('class="turn-pair') == 2
    (href,) = set(re.findall(r'rel="next" href="([^"]+)"', page))  # above and below the turns
    query = parse_qs(urlsplit(html.unescape(href)).query)
    assert query["limit"] == ["2"] and query["a"] == [ORIGINAL] and query["project"] == [PROJECT]
    second = server.client.get(html.unescape(href), headers=bearer(READ)).text
    assert 'data-row="3"' in second and 'data-row="4"' in second
    assert "No turn here: this session has fewer turns" in second
    assert "« First turns" in second


def test_pick_form_when_an_id_is_missing(server: RunningServer):
    page = get(server, "/sessions/compare", project=PROJECT, a=XSS_A).text
    assert 'name="b"' in page and 'class="compare-form"' in page
    assert f'value="{escape(XSS_A)}"' in page


def hrefs(page: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(r'href="([^"]+)"', page)]


def test_replay_links_to_its_original_and_back(server: RunningServer):
    replay_page = get(server, f"/sessions/{REPLAY}", project=PROJECT).text
    assert "Replay of" in replay_page and "Compare with the original" in replay_page
    links = hrefs(replay_page)
    assert f"/sessions/{ORIGINAL}?project={PROJECT}" in links
    compare_links = [link for link in links if link.startswith("/sessions/compare?")]
    assert {tuple(parse_qs(urlsplit(link).query)[side][0] for side in "ab") for link in compare_links} == {
        (ORIGINAL, REPLAY)
    }

    original_page = get(server, f"/sessions/{ORIGINAL}", project=PROJECT).text
    assert "Replayed as" in original_page
    links = hrefs(original_page)
    assert f"/sessions/{REPLAY}?project={PROJECT}" in links
    assert f"/sessions/{SHORT_REPLAY}?project={PROJECT}" in links
    pairs = {
        (parse_qs(urlsplit(link).query)["a"][0], parse_qs(urlsplit(link).query)["b"][0])
        for link in links
        if link.startswith("/sessions/compare?")
    }
    assert pairs == {(ORIGINAL, REPLAY), (ORIGINAL, SHORT_REPLAY)}
    # The same id in the other project has no replays: they are looked up in the session's project.
    assert "Replayed as" not in get(server, f"/sessions/{ORIGINAL}", project=OTHER_PROJECT).text
    # A session that neither replays nor was replayed says nothing of replays.
    assert "Replay" not in get(server, f"/sessions/{ONLY_IN_OTHER}", project=OTHER_PROJECT).text.replace(
        "Compare with another session", ""
    )


def test_replays_listed_are_bounded(server: RunningServer):
    page = get(server, f"/sessions/{MANY_REPLAYED}", project=PROJECT).text
    assert page.count('class="replay"') == MAX_REPLAYS_LISTED
    (more,) = [link for link in hrefs(page) if "replay_of" in link]
    assert parse_qs(urlsplit(more).query)["metadata.replay_of"] == [MANY_REPLAYED]
    listed = server.client.get(more, headers=bearer(READ)).text
    assert listed.count("again-") >= MAX_REPLAYS_LISTED + 1


def test_hostile_replay_link_is_escaped(server: RunningServer):
    page = get(server, f"/sessions/{XSS_B}", project=PROJECT).text
    assert SCRIPT not in page and IMG not in page
    compare = [link for link in hrefs(page) if link.startswith("/sessions/compare?")]
    query = parse_qs(urlsplit(compare[0]).query)
    assert (query["a"], query["b"]) == ([XSS_A], [XSS_B])


def test_openapi_documents_the_route(server: RunningServer):
    schema = get(server, "/openapi.json").json()
    operation = schema["paths"]["/api/sessions/compare"]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} >= {"a", "b", "project", "limit"}
