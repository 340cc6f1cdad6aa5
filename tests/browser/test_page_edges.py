"""The dashboard's edges in Chromium, over `spanloom demo`'s data: the 404 page, the user page at
1440 px with every column inside its box, and wide tables on a phone that say they scroll."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _server_kit import RunningServer, run_server
from playwright.sync_api import Page, expect

from spanloom.demo import build_conversations, send_with_sdk

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("edges") / "spanloom.db") as server:
        send_with_sdk(build_conversations(), endpoint=server.traces_endpoint)
        yield server


@pytest.fixture
def open_page(browser: Any, demo_server: RunningServer) -> Iterator[Any]:
    contexts = []

    def new_page(viewport: dict[str, int]) -> Page:
        context = browser.new_context(viewport=viewport, base_url=demo_server.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield new_page
    for context in contexts:
        context.close()


def _users_by_sessions(server: RunningServer) -> list[str]:
    users = server.get_json("/api/users", project="demo", sort="sessions")["items"]
    return [user["user_id"] for user in users]


def test_an_unknown_address_shows_the_404_page_in_the_layout(open_page: Any):
    page = open_page(DESKTOP)
    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="No page at /no/such/page")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    page.get_by_role("main").get_by_role("link", name="sessions").click()
    page.wait_for_url("**/sessions")
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()


def test_the_user_page_keeps_every_column_inside_at_1440(open_page: Any, demo_server: RunningServer):
    page = open_page(DESKTOP)
    for user_id in _users_by_sessions(demo_server)[:3]:
        page.goto(f"/users/{user_id}?project=demo")
        wrap = page.locator(".table-wrap").first
        expect(wrap).to_be_visible()
        box = wrap.bounding_box()
        last = page.locator("table.sessions thead th").last
        cell = last.bounding_box()
        assert box and cell
        # The last column's header ends inside the table's box: nothing is cut.
        assert cell["x"] + cell["width"] <= box["x"] + box["width"] + 1, (user_id, cell, box)
        assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth + 1"), user_id
        # Ids on one line, whole in the title.
        link = page.locator("table.sessions tbody td.id a").first
        assert link.evaluate("a => getComputedStyle(a).whiteSpace") == "nowrap"
        assert link.get_attribute("title") == link.inner_text()


def test_wide_tables_on_a_phone_say_that_they_scroll(open_page: Any):
    page = open_page(PHONE)
    for path in ("/sessions?project=demo", "/users?project=demo", "/traces?project=demo"):
        page.goto(path)
        wrap = page.locator(".table-wrap").first
        expect(wrap).to_be_visible()
        assert wrap.evaluate("w => w.scrollWidth > w.clientWidth"), path
        hint = wrap.evaluate("w => getComputedStyle(w, '::before').content")
        assert "Scroll sideways" in hint, (path, hint)
        shown = wrap.evaluate("w => getComputedStyle(w, '::before').display")
        assert shown == "block", path
        # And the shadow on the side with more columns: gradients layered on the box.
        assert wrap.evaluate("w => getComputedStyle(w).backgroundImage").count("gradient") == 4


def test_no_caption_on_a_wide_screen(open_page: Any):
    page = open_page(DESKTOP)
    page.goto("/users?project=demo")
    assert (
        page.locator(".table-wrap").first.evaluate("w => getComputedStyle(w, '::before').content") == "none"
    )
