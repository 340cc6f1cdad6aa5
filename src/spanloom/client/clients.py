"""`Client` and `AsyncClient`: the same methods (api.py), sent with httpx, retried on 429 and 503."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from spanloom.client.api import Methods, Steps
from spanloom.client.pages import AsyncPages, ListSpec, Pages
from spanloom.client.transport import Request, Retry, answer_of, server_and_headers, unreachable


class Client(Methods[Any]):
    """The spanloom server's JSON API, from Python.

    ``Client()`` talks to the server `register()` sends to: its last `register()` in this process,
    else SPANLOOM_ENDPOINT (or the OTLP endpoint variables), else http://127.0.0.1:4318, with
    SPANLOOM_API_KEY. Lists (`sessions()`, `traces()`...) page lazily and have `to_pandas()` and
    `to_polars()`; errors raise SpanloomClientError; 429 and 503 are retried (`retry`).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        retry: Retry | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url, headers = server_and_headers(base_url, api_key)
        self.retry = retry or Retry()
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def _send(self, request: Request) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    request.method, request.path, params=request.params, json=request.json
                )
            except httpx.TransportError as error:
                raise unreachable(self.base_url, error) from None
            wait = self.retry.wait(response, attempt)
            if wait is None:
                return answer_of(request, response)
            time.sleep(wait)

    def _call(self, steps: Steps[Any]) -> Any:
        try:
            request = next(steps)
            while True:
                request = steps.send(self._send(request))
        except StopIteration as done:
            return done.value

    def _list(self, spec: ListSpec[Any]) -> Pages[Any]:
        return Pages(spec, self._send)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(Methods[Any]):
    """`Client`'s twin for asyncio: the same methods, awaited; lists are ``async for``-able and
    their `to_list()`, `to_pandas()` and `to_polars()` are awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        retry: Retry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url, headers = server_and_headers(base_url, api_key)
        self.retry = retry or Retry()
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def _send(self, request: Request) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
                    request.method, request.path, params=request.params, json=request.json
                )
            except httpx.TransportError as error:
                raise unreachable(self.base_url, error) from None
            wait = self.retry.wait(response, attempt)
            if wait is None:
                return answer_of(request, response)
            await asyncio.sleep(wait)

    async def _call(self, steps: Steps[Any]) -> Any:
        try:
            request = next(steps)
            while True:
                request = steps.send(await self._send(request))
        except StopIteration as done:
            return done.value

    def _list(self, spec: ListSpec[Any]) -> AsyncPages[Any]:
        return AsyncPages(spec, self._send)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
