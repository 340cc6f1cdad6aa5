"""An unknown URL: a browser gets a 404 page in the dashboard's layout, API clients the JSON
error; HEAD answers on every page as GET does, without a body."""

from __future__ import annotations

import pytest
from _server_kit import RunningServer, make_request, make_turn

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_browser_gets_a_page_for_an_unknown_path(server: RunningServer, method: str):
    response = server.client.request(method, "/no/such/<page>", headers=BROWSER)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    if method == "HEAD":
        assert response.content == b""
        return
    page = response.text
    # The dashboard's layout (navigation, footer), the path escaped, the ways back.
    assert '<nav aria-label="Main">' in page and 'href="/docs">JSON API' in page
    assert "No page at" in page and "/no/such/&lt;page&gt;" in page and "<page>" not in page
    assert 'href="/sessions"' in page


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/no/such/page", {"Accept": "application/json"}),
        ("/no/such/page", {"Accept": "*/*"}),
        ("/no/such/page", {}),
        # The API's and the machines' paths answer JSON even to a browser's Accept header.
        ("/api/no-such-list", BROWSER),
        ("/api/no-such-list", {}),
        ("/v1/metrics", BROWSER),
        ("/static/no-such.css", {}),
    ],
)
def test_api_clients_get_the_json_error(server: RunningServer, method: str, path: str, headers: dict):
    response = server.client.request(method, path, headers=headers)
    assert response.status_code == 404
    if path.startswith("/static/"):
        return  # a file that does not exist: plain text, as before
    assert response.headers["content-type"] == "application/json"
    if method == "GET":
        assert response.json()["error"]["code"] == "not_found"
    else:
        assert response.content == b""


def test_an_unknown_id_still_gets_its_own_page(server: RunningServer):
    response = server.client.get("/sessions/no-such-session", headers=BROWSER)
    assert response.status_code == 404 and "No session" in response.text


def test_head_answers_every_page_as_get_does(server: RunningServer):
    _, spans = make_turn("s-head", "u-head")
    assert server.post_spans(make_request(spans)).status_code == 200
    trace_id = server.get_json("/api/traces")["items"][0]["trace_id"]
    paths = [
        "/",
        "/sessions",
        "/sessions/s-head",
        "/users",
        "/users/u-head",
        "/users/compare?users=u-head",
        "/traces",
        f"/traces/{trace_id}",
        "/docs",
        "/login",
    ]
    for path in paths:
        got = server.client.get(path)
        head = server.client.head(path)
        assert (head.status_code, head.headers.get("location")) == (
            got.status_code,
            got.headers.get("location"),
        ), path
        assert head.content == b"", path
    assert server.client.head("/").status_code == 302
    assert server.client.head("/", follow_redirects=True).status_code == 200
    assert server.client.head("/sessions").status_code == 200
