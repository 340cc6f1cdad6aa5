"""The transcript and the lists show the user's words and the answer, whatever shape the span's
input/output came in; the raw request stays on the turn; hostile text is escaped in every shape."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from _server_kit import RunningServer, make_request, make_span, new_span_id, new_trace_id, run_server

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SHAPES = {
    "openai": (
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "Be kind"}, {"role": "user", "content": "Q openai"}],
        },
        {"choices": [{"message": {"role": "assistant", "content": "A openai"}}]},
    ),
    "anthropic": (
        {
            "model": "claude",
            "system": "Be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Q anthropic"}]}],
        },
        {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "A anthropic"}]},
    ),
    "responses": (
        {"model": "gpt-4.1", "input": "Q responses"},
        {
            "object": "response",
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "A responses"}]}],
        },
    ),
    "langchain": (
        {
            "messages": [
                [
                    {
                        "lc": 1,
                        "type": "constructor",
                        "id": ["langchain", "HumanMessage"],
                        "kwargs": {"content": "Q langchain"},
                    }
                ]
            ]
        },
        {"output": "A langchain"},
    ),
    "chain": ({"input": "Q chain"}, {"output": "A chain"}),
    "hostile": (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": HOSTILE}]}]},
        {"choices": [{"message": {"role": "assistant", "content": HOSTILE}}]},
    ),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("turns") / "turns.db") as running:
        spans = []
        for number, (shape, (request, response)) in enumerate(SHAPES.items()):
            span = make_span(
                new_trace_id(),
                new_span_id(),
                name=f"turn {shape}",
                start_ms=number * 1000,
                attributes={
                    "session.id": f"s-{shape}",
                    "user.id": "u",
                    "openinference.span.kind": "LLM",
                    "input.value": json.dumps(request),
                    "output.value": json.dumps(response),
                },
            )
            span.status.code = 0  # UNSET: what instrumentors leave on success
            spans.append(span)
        assert running.post_spans(make_request(spans)).status_code == 200
        yield running


def _bubbles(page: str, role: str) -> list[str]:
    return re.findall(
        rf'<div class="msg role-{role}"><span class="role">{role}</span><div class="content">(.*?)</div>',
        page,
        re.S,
    )


@pytest.mark.parametrize("shape", [shape for shape in SHAPES if shape != "hostile"])
def test_the_bubbles_hold_the_users_words_and_the_answer(server: RunningServer, shape: str):
    page = server.get(f"/sessions/s-{shape}").text
    assert _bubbles(page, "user") == [f"Q {shape}"]
    assert _bubbles(page, "assistant") == [f"A {shape}"]
    # the request as sent is one click away
    raw = re.search(r'<pre class="raw-input">(.*?)</pre>', page, re.S)
    assert raw and json.loads(html.unescape(raw[1])) == SHAPES[shape][0]


def test_the_lists_show_the_users_words(server: RunningServer):
    sessions = server.get("/sessions").text
    traces = server.get("/traces").text
    for shape in SHAPES:
        if shape != "hostile":
            assert f"Q {shape}" in sessions and f"A {shape}" in sessions
            assert f"Q {shape}" in traces and f"A {shape}" in traces
    assert '"messages"' not in sessions and "&#34;messages&#34;" not in sessions


def test_hostile_text_is_escaped_in_bubbles_and_lists(server: RunningServer):
    trace_id = server.get_json("/api/sessions/s-hostile")["turns"][0]["trace_id"]
    for path in ("/sessions/s-hostile", "/sessions", "/traces", f"/traces/{trace_id}"):
        page = server.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert _bubbles(server.get("/sessions/s-hostile").text, "user") == [
        html.escape(HOSTILE).replace("&quot;", "&#34;").replace("&#x27;", "&#39;")
    ]


def test_a_turn_without_error_shows_ok_not_unset(server: RunningServer):
    page = server.get("/sessions/s-openai").text
    assert ">unset<" not in page
    assert '<span class="badge ok">ok</span>' in page
    trace_id = server.get_json("/api/sessions/s-openai")["turns"][0]["trace_id"]
    assert server.get_json("/api/sessions/s-openai")["turns"][0]["status"] == "UNSET"  # the API keeps it
    trace_page = server.get(f"/traces/{trace_id}").text
    assert ">unset<" not in trace_page and "<dd>UNSET" not in trace_page


def test_existing_api_fields_keep_the_text_as_stored(server: RunningServer, tmp_path: Path):
    turn = server.get_json("/api/sessions/s-openai")["turns"][0]
    assert json.loads(turn["input"]) == SHAPES["openai"][0]
