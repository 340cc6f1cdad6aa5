"""The queue between a store's callers and its one writer thread, the same for both backends.

Callers put requests without waiting (a full queue is StoreBusyError, which ingest answers with
503 and Retry-After); the writer takes them in batches (`next_batch`): whatever waits, up to a
number of spans, goes into one write, which is what lets one writer keep up with many senders.
`stop()` queues the end behind every write already queued, so those still finish.
"""

from __future__ import annotations

import queue
from concurrent.futures import Future, InvalidStateError
from typing import Any, Generic, Protocol, TypeVar

from spanloom.server.store.base import StoreBusyError


class Sized(Protocol):
    @property
    def size(self) -> int: ...  # spans and results the request carries


RequestT = TypeVar("RequestT", bound=Sized)


class WriteQueue(Generic[RequestT]):
    def __init__(self, size: int) -> None:
        self._queue: queue.Queue[RequestT | None] = queue.Queue(maxsize=max(1, size))
        self._stopping = False

    def put_nowait(self, request: RequestT) -> None:
        """Queue a write; StoreBusyError when the queue is full."""
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise StoreBusyError("the write queue is full") from None

    def put(self, request: RequestT, timeout: float) -> None:
        """Queue a write, waiting up to `timeout` seconds for room (queue.Full after that)."""
        self._queue.put(request, timeout=timeout)

    def stop(self) -> None:
        """Queue the end, behind every queued write (blocks while the queue is full)."""
        self._queue.put(None)

    def full(self) -> bool:
        return self._queue.full()

    def empty(self) -> bool:
        return self._queue.empty()

    def qsize(self) -> int:
        return self._queue.qsize()

    def next_batch(self, max_size: int) -> list[RequestT] | None:
        """The writer's next batch: the first request (waiting for one), then whatever else is
        queued while the batch holds fewer than `max_size` spans and results. None once stopped."""
        if self._stopping:
            return None
        first = self._queue.get()
        if first is None:
            self._stopping = True
            return None
        batch = [first]
        count = first.size
        while count < max_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._stopping = True
                break
            batch.append(item)
            count += item.size
        return batch


def settle(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Resolve a caller's future, unless it is done already: the ingest route's wait cancels it
    when the client goes away, and resolving a cancelled future raises."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass  # cancelled in between
