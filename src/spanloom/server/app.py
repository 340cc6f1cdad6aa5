"""`create_app(settings, store)`: the FastAPI application, routes, error handlers and the key check.

The caller owns the store: it is created before the app and closed after the server stops, so
every write accepted with a 200 is committed before the process exits. With `grpc_listen`, the app
also serves OTLP/gRPC there (grpc_serving.py), over the same ingest pipeline and keys, started and
stopped by its lifespan.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from spanloom.server.api.compare import router as compare_api_router
from spanloom.server.api.evaluations import router as evaluations_api_router
from spanloom.server.api.export.routes import router as export_api_router
from spanloom.server.api.feedback import router as feedback_api_router
from spanloom.server.api.routes import router as api_router
from spanloom.server.api.spans import router as spans_api_router
from spanloom.server.api.trends import router as trends_api_router
from spanloom.server.auth.keys import KeyRing
from spanloom.server.auth.middleware import INGEST_PATH, Auth, AuthMiddleware
from spanloom.server.auth.sessions import LoginSessions
from spanloom.server.auth.throttle import FailedKeyThrottle
from spanloom.server.cors import BrowserWritesCors
from spanloom.server.errors import HttpError, error_response
from spanloom.server.evaluators.runner import EvaluatorRunner
from spanloom.server.evaluators.session_runner import SessionEvaluatorRunner
from spanloom.server.grpc_serving import GrpcIngestServer
from spanloom.server.ingest.decode_processes import DecodeProcesses
from spanloom.server.ingest.limits import IngestLimits
from spanloom.server.ingest.pipeline import IngestPipeline
from spanloom.server.ingest.route import create_ingest_router
from spanloom.server.list_params import describe_problems
from spanloom.server.metrics.registry import Metrics
from spanloom.server.metrics.requests import RequestMetricsMiddleware
from spanloom.server.operations import ReadinessCheck
from spanloom.server.operations import router as operations_router
from spanloom.server.pricing import load_price_table
from spanloom.server.read_pacing import ReadPacing
from spanloom.server.retention import RetentionPolicy, RetentionRunner
from spanloom.server.settings import Settings
from spanloom.server.store.base import Store
from spanloom.server.web import login_router
from spanloom.server.web import router as web_router
from spanloom.server.web.api_docs import router as api_docs_router
from spanloom.server.web.compare_pages import router as compare_pages_router
from spanloom.server.web.evaluation_pages import router as evaluation_pages_router
from spanloom.server.web.head import answer_head
from spanloom.server.web.overview import router as overview_router
from spanloom.server.web.unknown_page import unknown_page, wants_page


def _lifespan(
    evaluators: EvaluatorRunner, sessions: SessionEvaluatorRunner, retention: RetentionRunner
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        grpc_server: GrpcIngestServer | None = app.state.grpc
        pipeline: IngestPipeline = app.state.ingest
        if pipeline.processes is not None:
            pipeline.processes.start()
        retention.start()
        sessions.start()
        if grpc_server is not None:
            grpc_server.start()
        yield
        if grpc_server is not None:
            # First: exports in flight are committed (and handed to the evaluators) before the
            # evaluators stop; new ones are refused, so the sender keeps them and retries.
            await asyncio.to_thread(grpc_server.stop)
        if pipeline.processes is not None:
            await asyncio.to_thread(pipeline.processes.close)
        # Each finishes its current write before the caller closes the store.
        retention.stop()
        sessions.stop()
        evaluators.close()

    return lifespan


def _status_code_name(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")


def create_app(
    settings: Settings,
    store: Store,
    grpc_listen: tuple[str, int] | None = None,
    *,
    clock: Callable[[], int] = time.time_ns,
    judge_transport: Any = None,
) -> FastAPI:
    """The app over `store`, also serving OTLP/gRPC on `grpc_listen` (host, port; port 0 for any
    free one) when given. Raises KeysFileError (a ValueError) when the keys file is malformed, and
    GrpcListenError when the gRPC port cannot be bound. `clock` (ns) is "now" for the session
    evaluators, and `judge_transport` the httpx transport of their llm_judge calls: tests give a
    fake clock and a MockTransport."""
    keys = KeyRing.from_settings(settings.api_key, settings.keys_file)
    # Server evaluators judge committed spans on a thread of their own, off the ingest path; the
    # lifespan stops it (judging what is queued) before the caller closes the store.
    evaluators = EvaluatorRunner(store, settings.evaluators_path)
    # Session evaluators judge sessions once ended or idle, yielding to ingest like the above.
    session_evaluators = SessionEvaluatorRunner(
        store,
        settings.evaluators_path,
        settings.session_idle_seconds,
        settings.session_eval_interval_seconds,
        busy=evaluators.busy,
        clock=clock,
        transport=judge_transport,
    )
    retention = RetentionRunner(
        store,
        RetentionPolicy(settings.retention_days, dict(settings.retention_by_project)),
        settings.retention_interval_seconds,
    )
    app = FastAPI(
        lifespan=_lifespan(evaluators, session_evaluators, retention),
        title="spanloom",
        summary="OpenTelemetry-native tracing for LLM apps, grouped by session and user",
        version="0.1.0",
        # /docs is served by web/api_docs.py (local files, the pages' CSP); no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    # A registry of this app's own (not prometheus_client's global one): several apps in one
    # process, as in the tests, keep their counts apart.
    metrics = Metrics()
    metrics.watch(store, evaluators, retention)
    app.state.metrics = metrics
    app.state.readiness = ReadinessCheck(store)
    app.state.auth = (
        Auth(keys, LoginSessions(), FailedKeyThrottle(limit=settings.max_key_failures_per_minute))
        if keys is not None
        else None
    )

    @app.exception_handler(HttpError)
    async def http_error(request: Request, error: HttpError) -> Response:
        if request.url.path == INGEST_PATH:
            metrics.ingest.refused(error.code)
        return error_response(error.status, error.code, error.message, error.headers, error.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        # loc[0] is where the parameter was ("query", "path"): the name follows it.
        return error_response(400, "bad_parameter", describe_problems(error.errors(), skip=1))

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404 and wants_page(request):
            # A mistyped address in a browser: a page with the way back, not raw JSON.
            return await asyncio.to_thread(unknown_page, request)
        return error_response(error.status_code, _status_code_name(error.status_code), str(error.detail))

    app.state.evaluators = evaluators
    app.state.session_evaluators = session_evaluators
    app.state.retention = retention
    prices = load_price_table(settings.pricing_file)
    app.state.price_table = prices.source.describe()
    metrics.price_table(prices.source)
    # One pipeline for every transport (OTLP/HTTP here, OTLP/gRPC from grpc_serving.py): the same
    # trace budget, the same decoding turn, the same hand-over to the evaluators, the same counts.
    # Big reads (a trace's spans) give way to ingest while spans arrive (read_pacing.py).
    app.state.read_pacing = ReadPacing()
    limits = IngestLimits.from_settings(settings)
    decoders = settings.decode_process_count()
    app.state.ingest = IngestPipeline(
        store,
        prices,
        limits,
        on_committed=evaluators.submit,
        metrics=metrics.ingest,
        pacing=app.state.read_pacing,
        processes=DecodeProcesses(decoders, limits, settings.pricing_file, store.span_preparer())
        if decoders
        else None,
    )
    app.state.grpc = None
    if grpc_listen is not None:
        try:
            app.state.grpc = GrpcIngestServer(
                app.state.ingest, app.state.auth, settings.retry_after_seconds, *grpc_listen
            )
        except Exception:
            evaluators.close()
            if app.state.ingest.processes is not None:
                app.state.ingest.processes.close()
            raise
    routers = (
        operations_router,
        # The dashboard's pages ("/" redirects to /sessions) and its sign-in.
        login_router,
        api_docs_router,
        # Before web_router: /users/compare must not be taken for the user named "compare".
        evaluation_pages_router,
        compare_pages_router,  # /sessions/compare, not the session "compare"
        overview_router,
        web_router,
        create_ingest_router(app.state.ingest, settings.retry_after_seconds),
        compare_api_router,  # before api_router, for the same reason
        export_api_router,  # before api_router: /api/sessions/export is not the session "export"
        api_router,
        evaluations_api_router,
        feedback_api_router,
        trends_api_router,
        spans_api_router,
    )
    for router in routers:
        answer_head(router)
        app.include_router(router)
    if app.state.auth is not None:
        app.add_middleware(AuthMiddleware, auth=app.state.auth)
    if settings.cors_origins:
        # Outside the key check: a browser's preflight carries no key and is answered here.
        app.add_middleware(BrowserWritesCors, origins=settings.cors_origins)
    # Added last, so it is the outermost: the key check's 401s and 429s are counted too, under
    # the route they were meant for (found among the routers' own routes, whose templates are
    # whole paths).
    app.add_middleware(
        RequestMetricsMiddleware,
        metrics=metrics.requests,
        routes=[route for router in routers for route in router.routes],
    )
    return app
