"""A small client for the spanloom server's JSON API, on the standard library alone (urllib), so
`import spanloom.client` adds nothing to an app and never loads the server.

    client = SpanloomClient("http://127.0.0.1:4318", api_key=None)
    client.log_evaluations([
        {"span_id": "5fb397be34d26b51", "trace_id": "...", "name": "helpfulness", "score": 0.9},
        {"trace_id": "...", "name": "resolved", "label": "yes"},  # the trace's root span
    ])
    # -> {"accepted": 2, "rejected": []}
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SpanloomClient", "SpanloomClientError"]


class SpanloomClientError(Exception):
    """The server answered with an error (or could not be reached)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class SpanloomClient:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def _request(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body.decode(errors="replace")
            return error.code, parsed
        except urllib.error.URLError as error:
            raise SpanloomClientError(f"cannot reach {self.base_url}: {error.reason}") from None

    def log_evaluations(self, results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Send evaluation results; returns ``{"accepted": n, "rejected": [{"index", "reason"}]}``.

        Results naming spans the server does not have come back in ``rejected`` (status 207, or
        422 when none was stored); anything else that is not a 2xx raises SpanloomClientError.
        """
        status, body = self._request("POST", "/api/evaluations", [dict(result) for result in results])
        if status in (200, 207, 422) and isinstance(body, dict) and "accepted" in body:
            return body
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        raise SpanloomClientError(f"POST /api/evaluations answered {status}: {message or body}", status, body)

    def evaluation_summary(self, group_by: str = "session", **params: Any) -> list[dict[str, Any]]:
        from urllib.parse import urlencode

        query = urlencode({"group_by": group_by, **{k: v for k, v in params.items() if v is not None}})
        status, body = self._request("GET", f"/api/evaluations/summary?{query}")
        if status != 200:
            raise SpanloomClientError(f"GET /api/evaluations/summary answered {status}", status, body)
        return body["items"]
