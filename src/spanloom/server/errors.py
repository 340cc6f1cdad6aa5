"""The one error shape every endpoint answers with: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class HttpError(Exception):
    """Raised by a route to answer with `status` and a JSON error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    """`details`: more fields of the error object (a 409's `projects`)."""
    body = {"code": code, "message": message, **(details or {})}
    return JSONResponse({"error": body}, status_code=status, headers=headers)
