"""The browser path: a page on its own origin loads the built `spanloom/feedback` ES module and
sends a thumbs-down and the end of the conversation to a real server, which allows that origin
(SPANLOOM_CORS_ORIGINS). A page on an origin the server does not list is stopped by Chromium's
CORS check, and the helper resolves to undefined with a warning instead of throwing."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _server_kit import make_request, make_turn, run_server
from tests.js_kit import JS_DIR, ensure_built, node

pytestmark = [pytest.mark.browser, pytest.mark.js]

INGEST = "browser-feedback-ingest-key-012"
READ = "browser-feedback-read-key-01234"
PAGE = "<!doctype html><meta charset=utf-8><title>Support chat</title><p>How can we help?</p>"
# What the page's own script would do on a click: the helpers from the built ES module.
SEND = """async ([server, key, traceId, retryForMs]) => {
  const { configureFeedback, endSession, logFeedback } = await import("/spanloom/feedback.js");
  configureFeedback({ url: server, apiKey: key, retryForMs });
  const id = await logFeedback({ score: -1, comment: "from the browser", traceId, userId: "alice" });
  const ended = await endSession("conv");
  return { id: id ?? null, ended };
}"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def static_site(root: Path) -> Iterator[str]:
    """The front end: `root` served over HTTP on loopback; yields its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, name="front-end", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def site_root(tmp_path: Path) -> Path:
    node()  # a clear failure when Node or js/node_modules is missing
    ensure_built()
    root = tmp_path / "site"
    shutil.copytree(JS_DIR / "dist" / "esm", root / "spanloom")
    (root / "index.html").write_text(PAGE)
    return root


def send_from_page(browser: Any, origin: str, arguments: list[Any]) -> tuple[dict[str, Any], list[str]]:
    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        page.goto(origin + "/index.html")
        return page.evaluate(SEND, arguments), console
    finally:
        page.close()


def test_feedback_from_a_browser_page(browser: Any, site_root: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {"key": INGEST, "role": "ingest", "projects": ["shop"]},
                    {"key": READ, "role": "read", "projects": ["shop"]},
                ]
            }
        )
    )
    with (
        static_site(site_root) as allowed,
        static_site(site_root) as elsewhere,
        run_server(tmp_path / "spanloom.db", keys_file=keys, cors_origins=(allowed,)) as server,
    ):
        turn, spans = make_turn("conv", "alice", 0, question="Where is my order?")
        stored = server.post_spans(
            make_request(spans, {"project.name": "shop"}), {"Authorization": f"Bearer {INGEST}"}
        )
        assert stored.status_code == 200

        def session() -> dict[str, Any]:
            response = server.client.get("/api/sessions/conv", headers={"Authorization": f"Bearer {READ}"})
            assert response.status_code == 200, response.text
            return response.json()

        done, console = send_from_page(browser, allowed, [server.url, INGEST, turn.hex(), 30_000])
        assert len(done["id"]) == 32 and done["ended"] is True, console
        conversation = session()
        assert conversation["status"] == "ended"
        [first] = conversation["turns"]
        assert [(r["id"], r["score"], r["explanation"]) for r in first["evaluations"]] == [
            (done["id"], -1.0, "from the browser")
        ]

        # A page on another origin: Chromium stops the request; the helper warns and resolves.
        refused, console = send_from_page(browser, elsewhere, [server.url, INGEST, turn.hex(), 1_000])
        assert refused == {"id": None, "ended": False}
        assert any("cannot reach" in line and "/api/feedback" in line for line in console), console
        assert session()["evaluations"]["feedback"]["count"] == 1
