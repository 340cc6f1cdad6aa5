"""The one exception the client raises."""

from __future__ import annotations

from typing import Any


class SpanloomClientError(Exception):
    """The server answered with an error, or could not be reached (`status` None).

    `status` is the HTTP status, `code` the API's error code (``not_found``, ``bad_parameter``...),
    `message` what the server said, `body` the parsed answer.
    """

    def __init__(
        self, message: str, status: int | None = None, body: Any = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.code = code
