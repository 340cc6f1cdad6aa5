"""/docs in Chromium: Swagger UI from this server only, under the pages' Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from _server_kit import run_server
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_docs_render_from_local_files_under_the_csp(browser, tmp_path: Path):
    with run_server(tmp_path / "docs.db") as server:
        page = browser.new_page()
        requested: list[str] = []
        problems: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda message: message.type == "error" and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        try:
            page.goto(f"{server.url}/docs")
            # The operations are listed: Swagger UI ran and read /openapi.json.
            expect(page.locator(".opblock-summary-path", has_text="/v1/traces")).to_be_visible()
            expect(page.locator(".opblock-summary-path", has_text="/api/sessions").first).to_be_visible()
            page.locator(".opblock-summary", has_text="/api/sessions").first.click()
            expect(page.get_by_text("Try it out").first).to_be_visible()
        finally:
            page.close()
        assert requested and all(url.startswith(server.url) for url in requested), requested
        assert not problems, problems


def test_docs_page_sends_the_csp_and_names_no_other_host(tmp_path: Path):
    with run_server(tmp_path / "docs.db") as server:
        page = httpx.get(f"{server.url}/docs")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert "http" not in page.text and "<script>" not in page.text
        for path in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
            asset = httpx.get(server.url + path)
            assert asset.status_code == 200 and asset.headers["x-content-type-options"] == "nosniff"
        assert httpx.get(f"{server.url}/docs/assets/..%2Fcore.py").status_code == 404
        assert httpx.get(f"{server.url}/redoc").status_code == 404
