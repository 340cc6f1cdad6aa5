"""The queue between a store's callers and its one writer thread, the same for both backends.

Callers put requests without waiting (a full queue is StoreBusyError, which ingest answers with
503 and Retry-After); the writer takes them in batches (`next_batch`): whatever waits, up to a
number of spans, goes into one write, which is what lets one writer keep up with many senders.
`stop()` queues the end behind every write already queued, so those still finish.

A queue made with `gather_seconds` also waits, that long at most, for writes its callers have
announced (`announced()`: ingest announces a request when it starts decoding it) before it hands
the writer a batch. For ClickHouse a batch costs about the same whatever its size (each INSERT
makes a part, which merges later rewrite), so two senders' requests written together cost about
half as much per span; and the writer then runs while no request is being decoded, not
competing with it for the GIL. Nothing is waited for when nothing is announced, except a short
grace when senders were waiting (see `next_batch`): a lone sender's request is written at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

from spanloom.server.store.base import StoreBusyError, WriteObserver

logger = logging.getLogger(__name__)


class Sized(Protocol):
    @property
    def size(self) -> int: ...  # spans and results the request carries


RequestT = TypeVar("RequestT", bound=Sized)


class WriteQueue(Generic[RequestT]):
    def __init__(self, size: int, gather_seconds: float = 0.0, grace_seconds: float = 0.01) -> None:
        self._items: deque[RequestT | None] = deque()
        self._capacity = max(1, size)
        self._changed = threading.Condition()
        self._announced = 0
        self._gather_seconds = gather_seconds
        self._grace_seconds = grace_seconds
        self._idle = False
        self._stopping = False

    def put_nowait(self, request: RequestT) -> None:
        """Queue a write; StoreBusyError when the queue is full."""
        with self._changed:
            if len(self._items) >= self._capacity:
                raise StoreBusyError("the write queue is full")
            self._append(request)

    def put(self, request: RequestT, timeout: float) -> None:
        """Queue a write, waiting up to `timeout` seconds for room (queue.Full after that)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._items) < self._capacity, timeout):
                raise queue.Full
            self._append(request)

    def stop(self) -> None:
        """Queue the end, behind every queued write (blocks while the queue is full)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._items) < self._capacity)
            self._append(None)

    def _append(self, item: RequestT | None) -> None:
        self._items.append(item)
        self._changed.notify_all()

    @contextmanager
    def announced(self) -> Iterator[None]:
        """While this is open, a write is coming: a gathering writer may wait for it."""
        with self._changed:
            self._announced += 1
        try:
            yield
        finally:
            with self._changed:
                self._announced -= 1
                self._changed.notify_all()

    @property
    def idle(self) -> bool:
        """The writer waits for a request: it has written everything queued."""
        with self._changed:
            return self._idle

    def full(self) -> bool:
        with self._changed:
            return len(self._items) >= self._capacity

    def empty(self) -> bool:
        with self._changed:
            return not self._items

    def qsize(self) -> int:
        with self._changed:
            return len(self._items)

    def next_batch(self, max_size: int) -> list[RequestT] | None:
        """The writer's next batch: the first request (waiting for one), then whatever else is
        queued, or announced within the gathering time, while the batch holds fewer than
        `max_size` spans and results. None once stopped."""
        with self._changed:
            if self._stopping:
                return None
            # A request already waiting means another sender wrote while the writer was busy:
            # the sender just answered will likely send again at once, so a gathering queue
            # gives it `grace_seconds` to announce its next request. A writer that had to wait
            # has caught up with every sender: no grace (a lone sender never waits for itself).
            senders_behind = bool(self._items)
            self._idle = True
            self._changed.wait_for(lambda: bool(self._items))
            self._idle = False
            first = self._take()
            if first is None:
                return None
            batch, count = [first], first.size
            now = time.monotonic()
            deadline = now + self._gather_seconds
            grace_end = min(deadline, now + self._grace_seconds) if senders_behind else now
            while count < max_size:
                if self._items:
                    item = self._take()
                    if item is None:
                        break
                    batch.append(item)
                    count += item.size
                    continue
                now = time.monotonic()
                if self._announced and now < deadline:
                    self._changed.wait_for(lambda: bool(self._items) or not self._announced, deadline - now)
                elif now < grace_end:
                    self._changed.wait_for(lambda: bool(self._items) or self._announced > 0, grace_end - now)
                    grace_end = now  # one grace a batch: for the next request, not the ones after it
                else:
                    break
            return batch

    def _take(self) -> RequestT | None:
        item = self._items.popleft()
        self._changed.notify_all()  # room for a waiting put
        if item is None:
            self._stopping = True
        return item


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


def notify(observers: Iterable[WriteObserver], records: int) -> None:
    """Tell each observer how many records a write stored; one that fails is logged, never the
    writer's failure."""
    if not records:
        return
    for observer in observers:
        try:
            observer(records)
        except Exception:
            logger.exception("spanloom: a write observer failed")
