"""The dashboard in Chromium: read a conversation, find where it broke, see who suffers.

Against a real server filled through the SDK (see dashboard_data). Screenshots of the main
pages go to a temporary folder (`--screenshots DIR` keeps them; the README's come from
scripts/screenshots.py). Waits are Playwright's own (each with a deadline), never sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _server_kit import RunningServer
from dashboard_data import (
    ENDED_SESSION,
    FAILING_SESSION,
    FAILING_TURN,
    FEEDBACK_TURN,
    IMG,
    JS_LINK,
    SCRIPT,
    STORY,
    TEMPLATE,
    TOOL_ERROR,
    XSS_PROJECT,
    XSS_SESSIONS,
    XSS_USER,
)
from page_watch import page_opener
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def page_factory(browser: Any, filled_server: RunningServer) -> Iterator[Any]:
    with page_opener(browser, filled_server.url, LAPTOP) as new_page:
        yield new_page


def session_ids_on(page: Page) -> list[str]:
    return page.locator("table.sessions tbody td.id:first-child a").all_inner_texts()


def test_find_where_a_conversation_breaks(page_factory: Any, screenshots: Path):
    page, watch = page_factory()
    page.goto("/sessions?project=shop")
    expect(page.locator("table.sessions tbody tr")).to_have_count(len(STORY))
    # The app ended one conversation through end_session(); the end user's thumbs are counted.
    ended_row = page.locator("table.sessions tbody tr", has=page.get_by_role("link", name=ENDED_SESSION))
    expect(ended_row.locator("[data-status]")).to_have_attribute("data-status", "ended")
    failing_row = page.locator("table.sessions tbody tr", has=page.get_by_role("link", name=FAILING_SESSION))
    expect(failing_row.locator("td.feedback-cell")).to_have_attribute("data-downs", "1")
    page.screenshot(path=screenshots / "sessions.png", full_page=True)

    # Filter by a user through the form: the URL holds the filter, so the view can be shared.
    page.fill("input[name=user_id]", "alice")
    page.locator("form.filters button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"user_id=alice"))
    alice = sorted(s.session_id for s in STORY if s.user_id == "alice")
    expect(page.locator("table.sessions tbody tr")).to_have_count(len(alice))
    assert sorted(session_ids_on(page)) == alice

    # Open the session: every turn, in order, the failing one marked.
    page.get_by_role("link", name=FAILING_SESSION, exact=True).click()
    expect(page.locator("h1")).to_contain_text(FAILING_SESSION)
    story = next(s for s in STORY if s.session_id == FAILING_SESSION)
    turns = page.locator("ol.transcript > li")
    expect(turns).to_have_count(len(story.turns))
    questions = page.locator("ol.transcript > li .msg.role-user .content").all_inner_texts()
    assert questions == [turn.question for turn in story.turns]
    failing = page.locator(f"#turn-{FAILING_TURN}")
    expect(failing).to_have_class(re.compile(r"\bfirst-failure\b"))
    expect(failing.locator(".breaks-here")).to_be_visible()
    # Marked: the turn whose tool failed, and the one the user gave a thumbs-down.
    failed = page.locator("li.turn.failed")
    expect(failed).to_have_count(2)
    assert [failed.nth(i).get_attribute("id") for i in range(2)] == [
        f"turn-{FAILING_TURN}",
        f"turn-{FEEDBACK_TURN}",
    ]
    expect(page.locator("figure.chart svg rect.latency")).to_have_count(len(story.turns))
    # The thumbs-down log_feedback() sent for a turn sits on that turn, with its comment.
    thumb = page.locator(f"#turn-{FEEDBACK_TURN} li.feedback")
    expect(thumb).to_have_attribute("data-thumb", "down")
    expect(thumb).to_contain_text(str(story.turns[FEEDBACK_TURN - 1].feedback[1]))  # type: ignore[index]

    # One click to where it breaks.
    page.get_by_role("link", name=re.compile("Where it breaks")).click()
    expect(page).to_have_url(re.compile(rf"#turn-{FAILING_TURN}$"))
    expect(failing).to_be_in_viewport()
    page.screenshot(path=screenshots / "session.png", full_page=True)

    # Then to that turn's trace: the span tree, the failing tool span open with its exception.
    failing.get_by_role("link", name=re.compile("Trace")).click()
    expect(page).to_have_url(re.compile(r"/traces/[0-9a-f]{32}#first-error$"))
    spans = page.locator("ol.spans > li.span")
    expect(spans).to_have_count(2)  # the agent and its tool; the model was never called
    expect(spans.nth(0)).to_have_class(re.compile(r"\bd0\b"))
    expect(spans.nth(1)).to_have_class(re.compile(r"\bd1\b.*\bfailed\b"))
    first_error = page.locator("#first-error")
    expect(first_error).to_have_attribute("open", "")
    expect(first_error.locator(".exception")).to_contain_text("TimeoutError")
    expect(first_error.locator(".exception")).to_contain_text(TOOL_ERROR)
    page.screenshot(path=screenshots / "trace-error.png", full_page=True)
    watch.check()


def test_llm_span_shows_messages_and_waterfall(
    page_factory: Any, filled_server: RunningServer, screenshots: Path
):
    trace_id = filled_server.get_json("/api/sessions/travel-plans")["turns"][2]["trace_id"]
    page, watch = page_factory()
    page.goto(f"/traces/{trace_id}")
    spans = page.locator("ol.spans > li.span")
    expect(spans).to_have_count(3)  # agent > tool, agent > ChatCompletion
    llm = page.locator("ol.spans > li.span", has=page.locator(".span-name", has_text="ChatCompletion"))
    llm.locator("summary").first.click()
    messages = llm.locator(".payload .msg")
    expect(messages.first).to_have_class(re.compile("role-system"))
    expect(llm.locator(".payload").first).to_contain_text("Cheapest way from the airport?")
    expect(llm.locator(".payload").nth(1)).to_contain_text("violet line")
    # The waterfall bar: the model call starts after the tool and ends last.
    tool_x = float(spans.nth(1).locator("svg.bar rect").get_attribute("x") or 0)
    llm_x = float(llm.locator("svg.bar rect").get_attribute("x") or 0)
    assert llm_x > tool_x
    page.get_by_role("button", name="Expand all").click()
    expect(page.locator("ol.spans details[open]")).to_have_count(3)
    page.screenshot(path=screenshots / "trace.png", full_page=True)
    watch.check()


def test_users_worst_experience_first(page_factory: Any, screenshots: Path):
    page, watch = page_factory()
    page.goto("/users?project=shop")
    page.get_by_role("link", name="Worst experience first").click()
    # By error rate (failing traces per trace), so a heavy user is not "worst" for volume alone.
    expect(page).to_have_url(re.compile(r"sort=error_rate&order=desc"))
    first_row = page.locator("table.users tbody tr").first
    expect(first_row.locator("td").first).to_have_text("alice")
    expect(first_row).to_have_class(re.compile("has-error"))
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Error rate")
    page.screenshot(path=screenshots / "users.png", full_page=True)

    first_row.get_by_role("link", name="alice").click()
    expect(page.locator("h1")).to_contain_text("alice")
    expect(page.locator("table.sessions tbody tr")).to_have_count(2)
    watch.check()


def test_phone_width(page_factory: Any, screenshots: Path):
    page, watch = page_factory(PHONE)
    page.goto(f"/sessions/{FAILING_SESSION}")
    expect(page.locator("ol.transcript > li")).to_have_count(4)
    # Nothing wider than the screen but the tables' own scrolling box.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    page.screenshot(path=screenshots / "session-phone.png", full_page=True)
    page.goto("/sessions?project=shop")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=screenshots / "sessions-phone.png", full_page=True)
    watch.check()


def test_hostile_span_text_stays_text(page_factory: Any, filled_server: RunningServer):
    page, watch = page_factory()
    trace_ids = [
        item["trace_id"] for item in filled_server.get_json("/api/traces", user_id=XSS_USER)["items"]
    ]
    assert trace_ids
    paths = ["/sessions", "/users", "/traces", f"/traces/{trace_ids[0]}", f"/traces/{trace_ids[-1]}"]
    for path in paths:
        page.goto(path)
        expect(page.locator("main")).to_contain_text(SCRIPT)
    # Session and user pages, reached by clicking their links: ids with "/", "?", "#" and quotes.
    for session_id in XSS_SESSIONS:
        page.goto("/sessions")
        page.locator("table.sessions tbody td.id a", has_text=session_id[:12]).first.click()
        expect(page.locator("h1 .ident")).to_have_text(session_id)
        expect(page.locator("main")).to_contain_text(f"{SCRIPT} {IMG} {JS_LINK} {TEMPLATE}")
        # An end user's comment is LLM-app input too: shown as text.
        expect(page.locator("li.feedback").first).to_contain_text(f"bad {SCRIPT}")
        page.locator(".page-head .meta a").first.click()
        expect(page.locator("h1 .ident")).to_have_text(XSS_USER)
    # The project picker lists the hostile project name as an option's text.
    expect(page.locator("#project-select option", has_text=XSS_PROJECT)).to_have_count(1)
    # No element came out of the text: no <img>, no <svg onload>, one script (ours).
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1
    watch.check()
