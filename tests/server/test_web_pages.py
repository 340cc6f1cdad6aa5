"""The dashboard's pages over a real server: content, filters through the URL, paging, 404s,
security headers, empty states, and span text that tries to become markup.

The world is sent as raw OTLP (exact times, so filters split it predictably); the browser tests
send theirs through the SDK.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from _server_kit import (
    BASE_TIME_NS,
    RunningServer,
    key_values,
    make_request,
    make_span,
    make_turn,
    new_span_id,
    new_trace_id,
    run_server,
)
from markupsafe import escape

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS_LINK = "javascript:alert(1)"
TEMPLATE = "{{7*7}} {% raw %}raw{% endraw %}"
HOSTILE = f"{SCRIPT} {IMG} {JS_LINK} {TEMPLATE}"
HOSTILE_SESSIONS = (f"s-{IMG}", JS_LINK, f"a/b?c=d#e {TEMPLATE}", "50% off & more")


# --- the world -------------------------------------------------------------------------------
def story_spec(index: int) -> dict[str, Any]:
    """Session `index`: 12 sessions, 3 users, 2 projects; some fail in a middle turn."""
    return {
        "session_id": f"conv-{index:02d}",
        "user_id": f"user-{index % 3}",
        "project": "shop" if index % 4 else "blog",
        "turns": 1 + index % 4,
        "failing_turn": 1 if index in (3, 7) else None,  # 0-based, so the second turn
        "tag": "vip" if index % 5 == 0 else "regular",
        "tier": "gold" if index % 2 else "free",
        "model": "gpt-4o" if index % 2 else "claude-3-5-sonnet",
        "start_ms": index * 3_600_000,
    }


def llm_turn(
    session_id: str, user_id: str, start_ms: float, question: str, answer: str, *, fail: bool, model: str
) -> list[Any]:
    """A CHAIN root, a TOOL child (failing with an exception event when `fail`) and an LLM child
    with OpenInference's flattened messages."""
    trace_id, root_id = new_trace_id(), new_span_id()
    ids = {"session.id": session_id, "user.id": user_id}
    root = make_span(
        trace_id,
        root_id,
        b"",
        "assistant",
        start_ms,
        1000,
        {"openinference.span.kind": "CHAIN", "input.value": question, "output.value": answer, **ids},
    )
    tool = make_span(
        trace_id,
        new_span_id(),
        root_id,
        "lookup_order",
        start_ms + 10,
        200,
        {
            "openinference.span.kind": "TOOL",
            "tool.name": "lookup_order",
            "input.value": '{"order_id": 1042, "fields": ["status", "eta"]}',
            "input.mime_type": "application/json",
            **ids,
        },
        error=fail,
    )
    if fail:
        tool.status.message = "orders service unavailable"
        tool.events.add(
            name="exception",
            time_unix_nano=BASE_TIME_NS + int((start_ms + 200) * 1e6),
            attributes=key_values(
                {
                    "exception.type": "TimeoutError",
                    "exception.message": "orders service timed out",
                    "exception.stacktrace": "Traceback (most recent call last):\n  ...\nTimeoutError",
                }
            ),
        )
    llm = make_span(
        trace_id,
        new_span_id(),
        root_id,
        "ChatCompletion",
        start_ms + 300,
        650,
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": model,
            "llm.token_count.prompt": 300,
            "llm.token_count.completion": 40,
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "You are the shop assistant.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": question,
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": answer,
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup_order",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"order_id": 1042}',
            **ids,
        },
    )
    return [root, tool, llm]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("pages") / "spanloom.db", backend=store_backend) as server:
        for index in range(12):
            spec = story_spec(index)
            spans = []
            for turn in range(spec["turns"]):
                question = "where is the needle" if (index, turn) == (5, 0) else f"question {index}.{turn}"
                spans += llm_turn(
                    spec["session_id"],
                    spec["user_id"],
                    spec["start_ms"] + turn * 60_000,
                    question,
                    f"answer {index}.{turn}",
                    fail=turn == spec["failing_turn"],
                    model=spec["model"],
                )
            for span in spans[:1] + spans[3::3]:  # every turn's root
                span.attributes.extend(
                    key_values({"tag.tags": [spec["tag"]], "metadata": f'{{"tier": "{spec["tier"]}"}}'})
                )
            response = server.post_spans(make_request(spans, {"project.name": spec["project"]}))
            assert response.status_code == 200, response.text
        yield server


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[RunningServer]:
    """Every field a person or a model can fill, filled with markup, script and template syntax."""
    with run_server(tmp_path_factory.mktemp("hostile") / "spanloom.db", backend=store_backend) as server:
        spans = []
        for index, session_id in enumerate(HOSTILE_SESSIONS):
            _, turn = make_turn(
                session_id,
                SCRIPT,
                index * 1000,
                question=f"question {HOSTILE}",
                answer=f"answer {HOSTILE}",
                error=index == 0,
                model=IMG,
                extra={
                    "tag.tags": [TEMPLATE, SCRIPT],
                    "metadata": '{"<script>alert(1)</script>": "\\"><img>"}',
                },
                tool=True,
            )
            turn[1].attributes.extend(
                key_values(
                    {
                        "llm.input_messages.0.message.role": SCRIPT,
                        "llm.input_messages.0.message.content": HOSTILE,
                        "llm.output_messages.0.message.role": "assistant",
                        "llm.output_messages.0.message.content": HOSTILE,
                        HOSTILE: JS_LINK,
                    }
                )
            )
            turn[1].name = f"llm {SCRIPT}"
            turn[1].status.message = HOSTILE
            turn[1].events.add(name=SCRIPT, attributes=key_values({"exception.message": HOSTILE}))
            spans += turn
        response = server.post_spans(make_request(spans, {"project.name": f"p {SCRIPT}"}))
        assert response.status_code == 200, response.text
        yield server


def get(server: RunningServer, url: str) -> httpx.Response:
    # A URL with its own query string: httpx's `params=` would replace it.
    return server.client.get(url)


def page(server: RunningServer, url: str, status: int = 200) -> str:
    response = get(server, url)
    assert response.status_code == status, (url, response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    check_headers(response)
    return response.text


def check_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    for directive in CSP.split("; "):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def parse(text: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element of the page as a browser's tokenizer sees it: (tag, attributes)."""
    parser = _Elements()
    parser.feed(text)
    parser.close()
    return parser.found


def session_ids(text: str) -> list[str]:
    """The session ids the list links to (each link names the session's project too)."""
    return [
        unquote(link)
        for link in re.findall(r'<td class="id"><a href="/sessions/([^"?]+)\?project=[^"]+"', text)
    ]


def user_ids(text: str) -> list[str]:
    return [
        html.unescape(name)
        for name in re.findall(r'<td class="id"><a href="/users/[^"]+"(?: title="[^"]*")?>([^<]*)</a>', text)
    ]


def expected(predicate: Any) -> set[str]:
    return {story_spec(i)["session_id"] for i in range(12) if predicate(story_spec(i))}


# --- pages -----------------------------------------------------------------------------------
def test_root_redirects_to_sessions(story: RunningServer):
    response = get(story, "/")
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/sessions"


def test_empty_server_tells_what_to_do(tmp_path: Path, store_backend: str):
    with run_server(tmp_path / "spanloom.db", backend=store_backend) as server:
        for url in ("/sessions", "/users", "/traces"):
            text = page(server, url)
            assert "spanloom.register(" in text
            assert "spanloom demo" in text
            assert "using_attributes(session_id=" in text


def test_sessions_page_lists_every_session(story: RunningServer):
    text = page(story, "/sessions")
    assert set(session_ids(text)) == expected(lambda s: True)
    assert session_ids(text) == [f"conv-{i:02d}" for i in reversed(range(12))]  # newest first
    assert "question 11.0" in text and "answer 11.3" in text  # first input, last output
    assert text.count('class="has-error"') == 2
    # The project picker lists the projects; the navigation marks the page.
    assert '<option value="shop"' in text and '<option value="blog"' in text
    assert 'class="active" aria-current="page">Sessions' in text


def test_session_page_reads_turn_by_turn(story: RunningServer):
    text = page(story, "/sessions/conv-07")
    turns = re.findall(r'<li id="turn-(\d+)" class="turn([^"]*)"', text)
    assert [number for number, _ in turns] == ["1", "2", "3", "4"]
    assert [classes.split() for _, classes in turns] == [[], ["failed", "error", "first-failure"], [], []]
    questions = re.findall(r'role-user"><span class="role">user</span><div class="content">([^<]*)<', text)
    assert questions == [f"question 7.{turn}" for turn in range(4)]
    assert 'href="#turn-2">Where it breaks: turn 2' in text
    # Each turn links to its trace; the failing one straight to the first error.
    assert len(re.findall(r'class="trace-link" href="/traces/[0-9a-f]{32}"', text)) == 3
    assert len(re.findall(r'class="trace-link" href="/traces/[0-9a-f]{32}#first-error"', text)) == 1
    # Totals, and a latency bar per turn in the server-made SVG with axes; each turn's tokens in
    # its bar's title and in the chart's table.
    assert "Failing turns" in text and ">1,360<" in text  # 4 turns x 340 tokens
    svg = text[text.index("<svg") : text.index("</svg>")]
    assert svg.count('class="latency') == 4 and svg.count("tokens 340, status ") == 4
    assert svg.count('class="latency failed"') == 1
    assert 'class="axis x-axis"' in svg and 'class="axis y-axis"' in svg
    assert [f'href="#turn-{number}"' in svg for number in range(1, 5)] == [True] * 4
    table = text[text.index('<table id="chart-turn-latency-table"') :]
    assert table[: table.index("</table>")].count("<td>340</td>") == 4
    assert 'href="/users/user-1?project=shop"' in text
    # Each turn's tool calls are folded into the transcript, the failed one with its error.
    assert text.count("1 tool call: lookup_order</summary>") == 4
    assert text.count('class="tool-call failed"') == 1
    assert "orders service unavailable" in text
    assert "&#34;order_id&#34;: 1042" in text or "&quot;order_id&quot;: 1042" in text


def test_session_without_errors_says_so(story: RunningServer):
    text = page(story, "/sessions/conv-01")
    assert "No turn in this session failed" in text
    assert "Where it breaks" not in text


def test_trace_page_shows_tree_waterfall_messages_and_errors(story: RunningServer):
    turn = story.get_json("/api/sessions/conv-03")["turns"][1]
    text = page(story, f"/traces/{turn['trace_id']}")
    rows = re.findall(r'<li id="span-([0-9a-f]{16})" class="span d(\d+)( failed)?">', text)
    assert [(depth, failed) for _, depth, failed in rows] == [("0", ""), ("1", " failed"), ("1", "")]
    # Waterfall: numbers in SVG attributes, the tool before the model call.
    bars = [float(x) for x in re.findall(r'<rect x="([\d.]+)" y="0" width="[\d.]+" height="10">', text)]
    assert bars[0] == 0 and bars[1] < bars[2]
    # The failing span is open, anchored, with its exception.
    assert '<details id="first-error" open>' in text
    assert "Exception: TimeoutError" in text and "orders service timed out" in text
    assert "Stack trace" in text
    # The LLM span's messages as chat; the tool's JSON input pretty-printed.
    assert '<div class="msg role-system">' in text and "You are the shop assistant." in text
    assert '<span class="tool-name">calls lookup_order</span>' in text
    assert "{\n  &#34;order_id&#34;: 1042,\n  &#34;fields&#34;: [" in text
    assert 'href="/sessions/conv-03?project=shop"' in text


def test_users_page_and_worst_first(story: RunningServer):
    text = page(story, "/users")
    # Every user id is in both projects: six users, each row marked with its project.
    assert sorted(user_ids(text)) == ["user-0", "user-0", "user-1", "user-1", "user-2", "user-2"]
    assert text.count('<span class="project-badge" title="Project">blog</span>') == 3
    assert page(story, "/users?project=blog").count('class="project-badge"') == 0
    assert 'href="/users?sort=errors&amp;order=desc"' in text
    worst = page(story, "/users?sort=errors&order=desc")
    assert user_ids(worst)[0] == "user-1"  # conv-07 (and nothing else of hers failed more)
    assert 'aria-sort="descending"' in worst


def test_user_page_lists_their_sessions(story: RunningServer):
    text = page(story, "/users/user-0?project=shop")
    assert set(session_ids(text)) == expected(lambda s: s["user_id"] == "user-0" and s["project"] == "shop")
    assert "First seen" in text and "Errors" in text
    assert 'href="/sessions?project=shop&amp;user_id=user-0"' in text


def test_traces_page(story: RunningServer):
    text = page(story, "/traces?session_id=conv-03")
    assert len(re.findall(r'<a href="/traces/[0-9a-f]{32}">', text)) == 4
    assert text.count('<span class="badge bad">error</span>') == 1


@pytest.mark.parametrize(
    ("query", "predicate"),
    [
        ("project=blog", lambda s: s["project"] == "blog"),
        ("user_id=user-2", lambda s: s["user_id"] == "user-2"),
        ("has_error=true", lambda s: s["failing_turn"] is not None),
        ("has_error=false", lambda s: s["failing_turn"] is None),
        ("tag=vip", lambda s: s["tag"] == "vip"),
        ("meta=tier%3Dgold", lambda s: s["tier"] == "gold"),
        ("metadata.tier=free", lambda s: s["tier"] == "free"),  # the API's spelling works too
        ("q=NEEDLE", lambda s: s["session_id"] == "conv-05"),
        ("range=24h", lambda s: False),  # the story happened in 2025
        (
            "range=custom&start=2025-06-15T15:00:00&end=2025-06-15T17:00:00",
            lambda s: s["start_ms"] // 3_600_000 <= 1,
        ),
        (
            "user_id=&q=&has_error=&tag=&meta=&range=&start=&end=&sort=&order=",
            lambda s: True,
        ),  # an empty form
        (
            "user_id=user-1&tag=regular&has_error=false",
            lambda s: s["user_id"] == "user-1" and s["tag"] == "regular" and s["failing_turn"] is None,
        ),
    ],
)
def test_session_filters_through_the_url(story: RunningServer, query: str, predicate: Any):
    assert set(session_ids(page(story, f"/sessions?{query}"))) == expected(predicate)


@pytest.mark.parametrize(
    "query",
    [
        "user_id=user-2",
        "has_error=true",
        "tag=vip",
        "metadata.tier=gold",
        "q=needle",
        "sort=tokens&order=asc",
    ],
)
def test_the_page_and_the_api_read_parameters_alike(story: RunningServer, query: str):
    api = get(story, f"/api/sessions?{query}").json()["items"]
    assert session_ids(page(story, f"/sessions?{query}")) == [item["session_id"] for item in api]


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("span_kind=tool", 30),
        ("model=gpt-4o", 3 * 6),
        ("status=ERROR", 2),
        ("user_id=user-0", 1 + 4 + 3 + 2),
        ("q=needle", 1),
    ],
)
def test_trace_filters_through_the_url(story: RunningServer, query: str, count: int):
    text = page(story, f"/traces?{query}&limit=1000")
    assert len(re.findall(r'<td class="id"><a href="/traces/', text)) == count


def test_filter_form_shows_the_url_state(story: RunningServer):
    text = page(
        story,
        "/sessions?user_id=user-1&tag=vip&meta=tier%3Dgold&has_error=true&sort=cost&order=asc"
        "&start=1750000000",
    )
    assert '<input name="user_id" value="user-1"' in text
    assert '<input name="tag" value="vip">' in text
    assert '<input name="meta" value="tier=gold">' in text
    assert '<option value="true" selected>' in text
    assert '<option value="cost" selected>' in text and '<option value="asc" selected>' in text
    assert '<option value="custom" selected>' in text and 'value="2025-06-15T15:06:40"' in text


def test_cursor_paging_visits_every_session_once(story: RunningServer):
    url, seen, pages = "/sessions?limit=5&sort=turns&order=desc", [], 0
    while url:
        text = page(story, url)
        seen += session_ids(text)
        pages += 1
        found = re.search(r'rel="next" href="([^"]+)"', text)
        url = html.unescape(found[1]) if found else None
        if url:
            assert "sort=turns" in url and "limit=5" in url  # the rest of the state rides along
    assert pages == 3 and sorted(seen) == sorted(expected(lambda s: True)) and len(seen) == 12


def test_sort_headers_toggle_the_order(story: RunningServer):
    text = page(story, "/sessions?sort=tokens&order=desc")
    assert 'href="/sessions?sort=tokens&amp;order=asc">Tokens ▼' in text
    assert 'href="/sessions?sort=cost&amp;order=desc">Cost</a>' in text


@pytest.mark.parametrize(
    "url", ["/sessions/no-such", "/users/no-such", "/traces/" + "0" * 32, f"/sessions/{quote(SCRIPT)}"]
)
def test_unknown_ids_are_html_404s(story: RunningServer, url: str):
    text = page(story, url, status=404)
    assert "<h1>No " in text
    assert SCRIPT not in text


@pytest.mark.parametrize(
    "query", ["limit=0", "sort=bogus", "range=2h", "start=yesterday", "cursor=xyz", "meta=novalue"]
)
def test_bad_parameters_are_html_400s(story: RunningServer, query: str):
    text = page(story, f"/sessions?{query}", status=400)
    assert "This filter cannot be read" in text


def test_static_files(story: RunningServer):
    text = page(story, "/sessions")
    for name, media_type in (("app.css", "text/css"), ("app.js", "text/javascript")):
        link = re.search(rf'"(/static/{re.escape(name)}\?v=[0-9a-f]+)"', text)
        assert link
        response = get(story, link[1])
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type)
        assert response.headers["x-content-type-options"] == "nosniff"
    assert get(story, "/static/../app.py").status_code == 404
    assert get(story, "/static/nope.js").status_code == 404


def test_no_inline_script_or_style_anywhere(story: RunningServer):
    trace_id = story.get_json("/api/traces")["items"][0]["trace_id"]
    for url in (
        "/sessions",
        "/sessions/conv-07",
        "/users",
        "/users/user-1?project=shop",
        "/traces",
        f"/traces/{trace_id}",
    ):
        text = page(story, url)
        assert re.findall(r"<script[^>]*>", text) == [
            re.search(r'<script src="/static/app\.js\?v=\w+" defer>', text)[0]
        ]
        assert " style=" not in text and "<style" not in text


# --- hostile text ----------------------------------------------------------------------------
def hostile_urls(server: RunningServer) -> list[str]:
    traces = server.get_json("/api/traces", limit=100)["items"]
    return [
        "/sessions",
        "/users",
        "/traces",
        f"/users/{quote(SCRIPT, safe='')}",
        *(f"/sessions/{quote(session_id, safe='')}" for session_id in HOSTILE_SESSIONS),
        *(f"/traces/{trace['trace_id']}" for trace in traces),
        f"/sessions?q={quote(SCRIPT)}&tag={quote(TEMPLATE)}&meta={quote(SCRIPT + '=' + IMG)}",
        f"/sessions/{quote('nope ' + SCRIPT, safe='')}",
    ]


def test_hostile_text_is_shown_as_text_on_every_page(hostile: RunningServer):
    for url in hostile_urls(hostile):
        text = page(hostile, url, status=404 if "nope" in url else 200)
        # Nothing turned into markup: the elements and attributes are the templates' own.
        elements = parse(text)
        tags = [tag for tag, _ in elements]
        assert "img" not in tags and tags.count("script") == 1, url
        for tag, attributes in elements:
            for name, value in attributes:
                assert not name.startswith("on"), (url, tag, name)
                if name in ("href", "src", "action"):
                    assert not (value or "").strip().lower().startswith("javascript:"), (url, tag, value)
        # ...and the text itself is there, escaped.
        assert str(escape(SCRIPT)) in text, url


def test_hostile_ids_round_trip_through_links(hostile: RunningServer):
    text = page(hostile, "/sessions")
    assert sorted(session_ids(text)) == sorted(HOSTILE_SESSIONS)
    for session_id in HOSTILE_SESSIONS:
        assert f'href="/sessions/{html.escape(quote(session_id, safe=""))}?project=' in text
        detail = page(hostile, f"/sessions/{quote(session_id, safe='')}")
        assert f'<code class="ident">{escape(session_id)}</code>' in detail
        assert str(escape(HOSTILE)) in detail  # the conversation, escaped
        assert "{{7*7}}" in detail  # template syntax in data is never evaluated
    assert f'href="/users/{quote(SCRIPT, safe="")}?project=' in text


def test_hostile_fields_on_the_trace_page(hostile: RunningServer):
    trace_id = hostile.get_json(f"/api/sessions/{quote(HOSTILE_SESSIONS[0], safe='')}")["turns"][0][
        "trace_id"
    ]
    text = page(hostile, f"/traces/{trace_id}")
    for value in (SCRIPT, IMG, HOSTILE, f"llm {SCRIPT}"):
        assert str(escape(value)) in text
    assert '<div class="msg role-other">' in text  # a role that is not a role gets a fixed class
    assert f'<option value="{escape("p " + SCRIPT)}">' in text  # the project picker
