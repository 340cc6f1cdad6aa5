"""`create_app(settings, store)`: the FastAPI application, routes, error handlers and API-key check.

The caller owns the store: it is created before the app and closed after the server stops, so
every write accepted with a 200 is committed before the process exits.
"""

from __future__ import annotations

import hmac

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from spanloom.server.api.routes import router as api_router
from spanloom.server.errors import HttpError, error_response
from spanloom.server.ingest.route import create_ingest_router
from spanloom.server.pricing import load_price_table
from spanloom.server.settings import Settings
from spanloom.server.store.base import Store
from spanloom.server.web import router as web_router

# Readable without a key: the API's description, not its data.
_OPEN_PATHS = ("/", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")


class ApiKeyMiddleware(BaseHTTPMiddleware):
    """Every request but the docs must carry the key: ``Authorization: Bearer KEY`` or ``X-API-Key``."""

    def __init__(self, app: object, api_key: str) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self._key = api_key.encode()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path not in _OPEN_PATHS:
            authorization = request.headers.get("authorization", "")
            scheme, _, token = authorization.partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else request.headers.get("x-api-key", "")
            # Constant-time comparison: the key should not leak one byte at a time.
            if not hmac.compare_digest(given.encode(), self._key):
                return error_response(401, "unauthorized", "a valid API key is required")
        return await call_next(request)


def _status_code_name(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")


def create_app(settings: Settings, store: Store) -> FastAPI:
    app = FastAPI(
        title="spanloom",
        summary="OpenTelemetry-native tracing for LLM apps, grouped by session and user",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.store = store

    @app.exception_handler(HttpError)
    async def http_error(request: Request, error: HttpError) -> Response:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', ())[1:]) or 'request'}: {item.get('msg')}"
            for item in error.errors()
        )
        return error_response(400, "bad_parameter", problems)

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, error: StarletteHTTPException) -> Response:
        return error_response(error.status_code, _status_code_name(error.status_code), str(error.detail))

    # The dashboard's pages ("/" redirects to /sessions).
    app.include_router(web_router)

    app.include_router(
        create_ingest_router(
            store,
            load_price_table(settings.pricing_file),
            settings.max_body_bytes,
            settings.retry_after_seconds,
        )
    )
    app.include_router(api_router)
    if settings.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
    return app
