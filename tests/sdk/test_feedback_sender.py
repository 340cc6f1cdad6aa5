"""FeedbackSender: retries what the server could not take now, in order, in bounded requests,
and never twice as two results (each item keeps its id across retries)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from spanloom.sdk.feedback_sender import MAX_BATCH_ITEMS, FeedbackSender, Outgoing

from ..conftest import Collector


def item(number: int, url: str) -> Outgoing:
    return Outgoing.feedback(url, {"authorization": "Bearer k"}, {"id": f"fb-{number}", "score": 1.0})


def delivered_ids(collector: Collector) -> list[str]:
    return [entry["id"] for _, _, body in collector.requests if body for entry in json.loads(body)]


@pytest.fixture
def sender() -> Iterator[FeedbackSender]:
    running = FeedbackSender(min_backoff_seconds=0.01, max_backoff_seconds=0.05)
    yield running
    running.close(timeout=5)


def test_retries_on_5xx_and_429_until_stored(sender: FeedbackSender):
    answers = iter([503, 429, 502, 200])
    attempts: list[int] = []

    def status() -> int:
        attempts.append(code := next(answers))
        return code

    collector = Collector(status=status)
    try:
        assert sender.submit(item(1, collector.base + "/api/feedback"))
        assert sender.flush(10)
        assert attempts == [503, 429, 502, 200]
        assert delivered_ids(collector) == ["fb-1"]  # the same id each time: stored once
        assert (sender.delivered, sender.refused, sender.pending) == (1, 0, 0)
    finally:
        collector.server.shutdown()


def test_a_refusal_is_not_retried(sender: FeedbackSender, caplog: pytest.LogCaptureFixture):
    attempts: list[int] = []
    collector = Collector(status=lambda: attempts.append(400) or 400)
    try:
        with caplog.at_level("WARNING", logger="spanloom"):
            assert sender.submit(item(1, collector.base + "/api/feedback"))
            assert sender.flush(10)
        assert attempts == [400]
        assert (sender.delivered, sender.refused) == (0, 1)
        assert "answered 400" in caplog.text
    finally:
        collector.server.shutdown()


def test_queued_feedback_goes_in_order_in_requests_of_bounded_size(sender: FeedbackSender):
    release = threading.Event()
    first_request = threading.Event()

    def status() -> int:
        first_request.set()
        release.wait(10)  # the first request waits while more feedback queues up behind it
        return 200

    collector = Collector(status=status)
    try:
        url = collector.base + "/api/feedback"
        assert sender.submit(item(0, url))
        assert first_request.wait(10)
        for number in range(1, 151):
            assert sender.submit(item(number, url))
        end = Outgoing(collector.base + "/api/sessions/s/end", {}, None, "the end of session 's'")
        assert sender.submit(end)
        assert sender.submit(item(151, url))
        release.set()
        assert sender.flush(10)
        sizes = [len(json.loads(body)) if body else 0 for _, _, body in collector.requests]
        assert sizes == [1, MAX_BATCH_ITEMS, 50, 0, 1]  # the session end is a request of its own
        assert delivered_ids(collector) == [f"fb-{number}" for number in range(152)]
    finally:
        release.set()
        collector.server.shutdown()


def test_close_stops_retrying_within_its_timeout():
    sender = FeedbackSender(min_backoff_seconds=10, max_backoff_seconds=10)
    collector = Collector(status=lambda: 503)
    try:
        assert sender.submit(item(1, collector.base + "/api/feedback"))
        sender.close(timeout=0.2)  # returns although the server never takes it
        assert sender.submit(item(2, collector.base + "/api/feedback")) is False
    finally:
        collector.server.shutdown()
