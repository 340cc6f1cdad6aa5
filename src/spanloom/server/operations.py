"""Operating the server: ``GET /healthz``, ``GET /readyz`` and ``GET /metrics``.

- ``/healthz``: the process answers (a liveness probe). It touches nothing else.
- ``/readyz``: the store accepts a write now (a readiness probe): 503 with the reason while the
  disk or the database's size limit is full, or the writer has taken nothing for
  READY_TIMEOUT_SECONDS. Both are open, like ``/docs``: probes carry no keys, and the answers hold
  no data. As anyone may call ``/readyz``, the store is probed at most once per
  READY_MAX_AGE_SECONDS; calls in between share the last answer.
- ``/metrics``: the Prometheus text format. Behind an admin key for every project when keys are
  configured (see auth/middleware.py); open, like the docs, when none are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from spanloom.server.errors import HttpError
from spanloom.server.metrics.registry import CONTENT_TYPE, Metrics
from spanloom.server.store.base import Readiness, Store

READY_TIMEOUT_SECONDS = 2.0
READY_MAX_AGE_SECONDS = 1.0

router = APIRouter(tags=["operations"])


class ReadinessCheck:
    """The store's readiness, asked at most once per `max_age` seconds: one caller probes while
    the others wait for its answer, then share it."""

    def __init__(
        self,
        store: Store,
        timeout: float = READY_TIMEOUT_SECONDS,
        max_age: float = READY_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._timeout = timeout
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, Readiness] | None = None

    def __call__(self) -> Readiness:
        """Blocking: call it off the event loop."""
        with self._lock:
            if self._last is not None and self._clock() - self._last[0] < self._max_age:
                return self._last[1]
            readiness = self._store.check_ready(self._timeout)
            self._last = (self._clock(), readiness)
            return readiness


class Health(BaseModel):
    status: str


@router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the store accepts a write now",
    response_model=Health,
    responses={503: {"description": "The store would not take a write now; the message says why"}},
)
async def readyz(request: Request) -> Health:
    check: ReadinessCheck = request.app.state.readiness
    readiness = await run_in_threadpool(check)
    if not readiness.ready:
        raise HttpError(503, "not_ready", readiness.reason)
    return Health(status="ready")


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format)",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "The Prometheus text exposition"},
        401: {"description": "Keys are configured and the request carries no valid one"},
        403: {"description": "The key is not an admin key for every project"},
    },
)
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    # Off the event loop: a store may ask its server for its size.
    body = await run_in_threadpool(registry.render)
    return Response(body, media_type=CONTENT_TYPE)
