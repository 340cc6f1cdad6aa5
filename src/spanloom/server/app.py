"""`create_app(settings, store)`: the FastAPI application, routes, error handlers and the key check.

The caller owns the store: it is created before the app and closed after the server stops, so
every write accepted with a 200 is committed before the process exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from spanloom.server.api.evaluations import router as evaluations_api_router
from spanloom.server.api.routes import router as api_router
from spanloom.server.auth.keys import KeyRing
from spanloom.server.auth.middleware import Auth, AuthMiddleware
from spanloom.server.auth.sessions import LoginSessions
from spanloom.server.auth.throttle import FailedKeyThrottle
from spanloom.server.errors import HttpError, error_response
from spanloom.server.evaluators.runner import EvaluatorRunner
from spanloom.server.ingest.limits import IngestLimits
from spanloom.server.ingest.route import create_ingest_router
from spanloom.server.list_params import describe_problems
from spanloom.server.pricing import load_price_table
from spanloom.server.retention import RetentionPolicy, RetentionRunner
from spanloom.server.settings import Settings
from spanloom.server.store.base import Store
from spanloom.server.web import login_router
from spanloom.server.web import router as web_router
from spanloom.server.web.api_docs import router as api_docs_router
from spanloom.server.web.evaluation_pages import router as evaluation_pages_router


def _lifespan(
    evaluators: EvaluatorRunner, retention: RetentionRunner
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        retention.start()
        yield
        # Both finish their current write before the caller closes the store.
        retention.stop()
        evaluators.close()

    return lifespan


def _status_code_name(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")


def create_app(settings: Settings, store: Store) -> FastAPI:
    """The app over `store`. Raises KeysFileError (a ValueError) when the keys file is malformed."""
    keys = KeyRing.from_settings(settings.api_key, settings.keys_file)
    # Server evaluators judge committed spans on a thread of their own, off the ingest path; the
    # lifespan stops it (judging what is queued) before the caller closes the store.
    evaluators = EvaluatorRunner(store, settings.evaluators_path)
    retention = RetentionRunner(
        store,
        RetentionPolicy(settings.retention_days, dict(settings.retention_by_project)),
        settings.retention_interval_seconds,
    )
    app = FastAPI(
        lifespan=_lifespan(evaluators, retention),
        title="spanloom",
        summary="OpenTelemetry-native tracing for LLM apps, grouped by session and user",
        version="0.1.0",
        # /docs is served by web/api_docs.py (local files, the pages' CSP); no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.auth = (
        Auth(keys, LoginSessions(), FailedKeyThrottle(limit=settings.max_key_failures_per_minute))
        if keys is not None
        else None
    )

    @app.exception_handler(HttpError)
    async def http_error(request: Request, error: HttpError) -> Response:
        return error_response(error.status, error.code, error.message, error.headers, error.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        # loc[0] is where the parameter was ("query", "path"): the name follows it.
        return error_response(400, "bad_parameter", describe_problems(error.errors(), skip=1))

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, error: StarletteHTTPException) -> Response:
        return error_response(error.status_code, _status_code_name(error.status_code), str(error.detail))

    # The dashboard's pages ("/" redirects to /sessions) and its sign-in.
    app.include_router(login_router)
    app.include_router(api_docs_router)
    # Before web_router: /users/compare must not be taken for the user named "compare".
    app.include_router(evaluation_pages_router)
    app.include_router(web_router)
    app.state.evaluators = evaluators
    app.state.retention = retention

    app.include_router(
        create_ingest_router(
            store,
            load_price_table(settings.pricing_file),
            IngestLimits.from_settings(settings),
            settings.retry_after_seconds,
            on_committed=evaluators.submit,
        )
    )
    app.include_router(api_router)
    app.include_router(evaluations_api_router)
    if app.state.auth is not None:
        app.add_middleware(AuthMiddleware, auth=app.state.auth)
    return app
