"""The one error shape every endpoint answers with: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

from starlette.responses import JSONResponse


class HttpError(Exception):
    """Raised by a route to answer with `status` and a JSON error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)
