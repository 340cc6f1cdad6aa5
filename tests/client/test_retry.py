"""Retries on 429 and 503, honoring Retry-After, with a bounded number of tries (the server is an
httpx.MockTransport here: a real one cannot be made to answer 429 and 503 on cue)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

import spanloom
from spanloom.client import Retry, SpanloomClientError
from spanloom.client import clients as clients_module

PROJECTS = {
    "items": [{"name": "shop", "span_count": 1, "trace_count": 1, "session_count": 1, "user_count": 1}]
}


def scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering with `answers` in turn, the last one from then on."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    return httpx.MockTransport(handle), seen


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(clients_module.time, "sleep", slept.append)
    return slept


def busy(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, json={"error": {"code": "busy", "message": "try later"}}, headers=headers)


def test_429_with_retry_after_then_200(waits: list[float]):
    transport, seen = scripted(busy(429, "2"), httpx.Response(200, json=PROJECTS))
    client = spanloom.Client("http://spanloom.test", transport=transport)
    assert [project.name for project in client.projects()] == ["shop"]
    assert len(seen) == 2 and waits == [2.0]


def test_503_twice_then_200_backs_off(waits: list[float]):
    transport, seen = scripted(busy(503), busy(503), httpx.Response(200, json=PROJECTS))
    client = spanloom.Client("http://spanloom.test", transport=transport, retry=Retry(backoff=0.1))
    assert client.projects().to_list()[0].name == "shop"
    assert len(seen) == 3 and waits == [0.1, 0.2]


def test_gives_up_after_its_tries(waits: list[float]):
    transport, seen = scripted(busy(503, "1"))
    client = spanloom.Client("http://spanloom.test", transport=transport, retry=Retry(tries=3))
    with pytest.raises(SpanloomClientError) as error:
        client.projects().to_list()
    assert (
        error.value.status == 503 and error.value.code == "busy" and error.value.message.endswith("try later")
    )
    assert len(seen) == 3 and waits == [1.0, 1.0]


def test_retry_after_as_a_date_and_capped(waits: list[float]):
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=20), usegmt=True)
    transport, _ = scripted(busy(429, later), busy(429, "3600"), httpx.Response(200, json=PROJECTS))
    client = spanloom.Client("http://spanloom.test", transport=transport, retry=Retry(max_wait=30))
    client.projects().to_list()
    assert 15 < waits[0] <= 20 and waits[1] == 30


def test_other_errors_are_not_retried(waits: list[float]):
    transport, seen = scripted(httpx.Response(500, text="boom"))
    with pytest.raises(SpanloomClientError) as error:
        spanloom.Client("http://spanloom.test", transport=transport).projects().to_list()
    assert error.value.status == 500 and "boom" in str(error.value) and len(seen) == 1 and waits == []


def test_async_client_retries_too(monkeypatch: pytest.MonkeyPatch):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(clients_module.asyncio, "sleep", sleep)
    seen: list[httpx.Request] = []
    answers = [busy(429, "1"), httpx.Response(200, json=PROJECTS)]

    async def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    async def read() -> list[str]:
        client = spanloom.AsyncClient("http://spanloom.test", transport=httpx.MockTransport(handle))
        try:
            return [project.name async for project in client.projects()]
        finally:
            await client.aclose()

    assert asyncio.run(read()) == ["shop"] and slept == [1.0] and len(seen) == 2
