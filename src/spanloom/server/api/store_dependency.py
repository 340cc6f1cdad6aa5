"""The store a request works on, as the API routes' one FastAPI dependency."""

from __future__ import annotations

from fastapi import Request

from spanloom.server.store.base import Store


async def get_store(request: Request) -> Store:
    # async, though it awaits nothing: FastAPI runs a plain `def` dependency in a worker thread,
    # a round trip through the event loop, and under ingest through the GIL, of every request.
    return request.app.state.store
