"""The writer's queue: batches of what waits, and, for a store that gathers, of what ingest has
announced it is decoding; never a wait for a write nobody announced."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import pytest

from spanloom.server.store.base import StoreBusyError
from spanloom.server.store.write_queue import WriteQueue

LONG = 60.0  # a gathering time no test may wait out: waiting for it fails the join below
JOIN = 10.0


@dataclass(frozen=True)
class Item:
    name: str
    size: int = 512


class Taker:
    """`next_batch` in a thread of its own, as the writer calls it."""

    def __init__(self, write_queue: WriteQueue[Item], max_size: int = 8192) -> None:
        self.batch: list[Item] | None = None
        self._thread = threading.Thread(target=self._take, args=(write_queue, max_size), daemon=True)
        self._thread.start()

    def _take(self, write_queue: WriteQueue[Item], max_size: int) -> None:
        self.batch = write_queue.next_batch(max_size)

    def result(self) -> list[str]:
        self._thread.join(JOIN)
        assert not self._thread.is_alive(), "next_batch waited for a write that was not coming"
        assert self.batch is not None
        return [item.name for item in self.batch]

    def running(self) -> bool:
        return self._thread.is_alive()


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + JOIN
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


def test_without_an_announcement_the_batch_is_what_waits_at_once() -> None:
    write_queue: WriteQueue[Item] = WriteQueue(8, gather_seconds=LONG)
    write_queue.put_nowait(Item("a"))
    write_queue.put_nowait(Item("b"))
    assert Taker(write_queue).result() == ["a", "b"]


def test_a_gathering_queue_waits_for_an_announced_write_and_batches_it() -> None:
    write_queue: WriteQueue[Item] = WriteQueue(8, gather_seconds=LONG)
    with write_queue.announced():
        write_queue.put_nowait(Item("a"))  # announced, decoded and queued: its announcement ends
    with write_queue.announced():  # the other sender's request, still decoding
        taker = Taker(write_queue)
        wait_until(write_queue.empty, "the writer took the first request")
        assert taker.running()  # it waits for the announced one
        write_queue.put_nowait(Item("b"))
    assert taker.result() == ["a", "b"]


def test_an_announcement_that_ends_without_a_write_ends_the_wait() -> None:
    write_queue: WriteQueue[Item] = WriteQueue(8, gather_seconds=LONG)
    write_queue.put_nowait(Item("a"))
    with write_queue.announced():  # a request that will be refused (400): nothing is queued
        taker = Taker(write_queue)
        wait_until(write_queue.empty, "the writer took the first request")
        assert taker.running()
    assert taker.result() == ["a"]


def test_the_gathering_time_bounds_the_wait() -> None:
    write_queue: WriteQueue[Item] = WriteQueue(8, gather_seconds=0.05)
    write_queue.put_nowait(Item("a"))
    with write_queue.announced():  # never queued while the writer waits
        assert Taker(write_queue).result() == ["a"]


def test_a_full_batch_waits_for_nothing_more() -> None:
    write_queue: WriteQueue[Item] = WriteQueue(8, gather_seconds=LONG)
    write_queue.put_nowait(Item("a", size=600))
    write_queue.put_nowait(Item("b", size=600))
    write_queue.put_nowait(Item("c", size=600))
    with write_queue.announced():
        assert Taker(write_queue, max_size=1000).result() == ["a", "b"]
    assert Taker(write_queue, max_size=1000).result() == ["c"]


def test_a_request_that_waited_gives_the_sender_just_answered_a_grace_to_announce_its_next() -> None:
    write_queue: WriteQueue[Item] = WriteQueue(8, gather_seconds=LONG, grace_seconds=LONG)
    write_queue.put_nowait(Item("a"))  # queued while the writer was busy: two senders
    taker = Taker(write_queue)
    wait_until(write_queue.empty, "the writer took the first request")
    assert taker.running()  # within the grace, nothing announced yet
    with write_queue.announced():
        write_queue.put_nowait(Item("b"))
    assert taker.result() == ["a", "b"]


def test_the_grace_ends_when_nobody_announces() -> None:
    write_queue: WriteQueue[Item] = WriteQueue(8, gather_seconds=LONG, grace_seconds=0.05)
    write_queue.put_nowait(Item("a"))
    assert Taker(write_queue).result() == ["a"]


def test_a_lone_sender_is_written_at_once() -> None:
    """The writer waited for the request: it is the only sender's, and nobody else is coming."""
    write_queue: WriteQueue[Item] = WriteQueue(8, gather_seconds=LONG, grace_seconds=LONG)
    taker = Taker(write_queue)
    wait_until(lambda: write_queue.idle, "the writer waits for a request")
    write_queue.put_nowait(Item("a"))
    assert taker.result() == ["a"]


def test_a_queue_that_does_not_gather_never_waits_for_an_announcement() -> None:
    write_queue: WriteQueue[Item] = WriteQueue(8)
    write_queue.put_nowait(Item("a"))
    with write_queue.announced():
        assert Taker(write_queue).result() == ["a"]


def test_stop_ends_a_gathering_wait_after_the_writes_before_it() -> None:
    write_queue: WriteQueue[Item] = WriteQueue(8, gather_seconds=LONG)
    write_queue.put_nowait(Item("a"))
    with write_queue.announced():
        taker = Taker(write_queue)
        wait_until(write_queue.empty, "the writer took the first request")
        write_queue.stop()
        assert taker.result() == ["a"]
    assert write_queue.next_batch(8192) is None


def test_a_full_queue_refuses_at_once_and_a_timed_put_gives_up() -> None:
    write_queue: WriteQueue[Item] = WriteQueue(1)
    write_queue.put_nowait(Item("a"))
    assert write_queue.full()
    with pytest.raises(StoreBusyError):
        write_queue.put_nowait(Item("b"))
    with pytest.raises(queue.Full):
        write_queue.put(Item("b"), timeout=0.01)
    assert Taker(write_queue).result() == ["a"]
    write_queue.put(Item("b"), timeout=JOIN)  # room again
    assert write_queue.qsize() == 1


def test_ingest_announces_a_request_from_its_decoding_until_it_is_queued(tmp_path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from spanloom.server.ingest.limits import IngestLimits
    from spanloom.server.ingest.pipeline import IngestPipeline, IngestRefusedError
    from spanloom.server.pricing import load_price_table
    from spanloom.server.settings import Settings
    from spanloom.server.store.url import open_store

    store = open_store(f"sqlite:///{tmp_path / 'spans.db'}")
    events: list[str] = []
    announce, insert = store.announce_write, store.insert_spans

    class Recorded:
        def __enter__(self) -> None:
            events.append("announced")
            self._inner = announce()
            self._inner.__enter__()

        def __exit__(self, *exc: object) -> None:
            events.append("ended")
            self._inner.__exit__(*exc)

    def recorded_insert(spans, projects=None):
        events.append("queued")
        return insert(spans, projects)

    store.announce_write = Recorded  # type: ignore[method-assign]
    store.insert_spans = recorded_insert  # type: ignore[method-assign]
    try:
        pipeline = IngestPipeline(store, load_price_table(None), IngestLimits.from_settings(Settings()))
        request = ExportTraceServiceRequest()
        span = request.resource_spans.add().scope_spans.add().spans.add()
        span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "turn"
        span.start_time_unix_nano, span.end_time_unix_nano = 1, 2
        pipeline.submit(request.SerializeToString(), False, None).outcome()
        assert events == ["announced", "queued", "ended"]
        events.clear()
        with pytest.raises(IngestRefusedError):
            pipeline.submit(b"\xff not protobuf", False, None)
        assert events == ["announced", "ended"]
    finally:
        store.close()
