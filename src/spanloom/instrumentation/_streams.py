"""Streams: the span of a streamed call ends when its stream is exhausted, closed or collected.

The caller keeps the SDK's own stream object, not a proxy: its type, helpers
(``get_final_message``, ``text_stream``, ``until_done``...), iteration and context manager stay
exactly the SDK's. Two hooks are set on that one instance:

- its ``_iterator`` (the generator both ``Stream.__iter__`` and ``Stream.__next__`` read) is
  wrapped by a generator that hands each chunk to the provider's accumulator;
- its ``close`` ends the span after the SDK's own close (``__exit__`` and the stream helpers
  call ``close``), and ends it too when the stream is dropped half way (see `_Close`).

Neither hook refers to the stream itself: Anthropic's streams are built to be freed by
reference counting, and a cycle through them would leave that to the garbage collector.

Per chunk, the hook does one list append: chunks are folded into the accumulator in batches
(at most `FOLD_EVERY` held at a time) and at the end, away from the SDK's own per-chunk work,
and the accumulator builds the span's attributes once. The span's request attributes were
built when the stream was returned; `Call.end` writes both sides in one pass.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

from spanloom.sdk._guard import log_failure

if TYPE_CHECKING:
    from spanloom.instrumentation._span import Call


class Accumulator(Protocol):
    """A provider's stream state: `extend` takes chunks in order, `attributes` builds the span's."""

    def extend(self, chunks: list[Any]) -> None: ...

    def attributes(self) -> dict[str, Any]: ...


# Chunks held before they are folded into the accumulator. The SDK frees each chunk as the
# caller moves on, so a bare stream rarely reaches the young GC generation's allocation
# threshold; every chunk held (a handful of pydantic objects) counts towards it. Measured on a
# 50-chunk stream: holding them all costs ~3 µs of GC per stream, 32 at a time ~0.6 µs, and
# each fold costs a few map/filter passes, so smaller batches cost more than they save.
FOLD_EVERY = 32


class StreamRecorder:
    """Feeds one stream's chunks to its accumulator and ends its span exactly once."""

    __slots__ = ("accumulator", "call", "chunks")

    def __init__(self, call: Call, accumulator: Accumulator) -> None:
        self.call: Call | None = call
        self.accumulator: Accumulator | None = accumulator
        self.chunks: list[Any] = []

    def fold(self) -> None:
        """Hand the chunks held so far to the accumulator; a failing accumulator is dropped."""
        chunks = self.chunks
        accumulator = self.accumulator
        if accumulator is not None:
            try:
                accumulator.extend(chunks)
            except Exception:
                log_failure("stream chunk accumulation")
                self.accumulator = None
        chunks.clear()

    def finish(self, error: BaseException | None = None) -> None:
        """End the span with the output so far (all of it when the stream was exhausted)."""
        call = self.call
        if call is None:
            return
        self.call = None
        attributes = None
        self.fold()
        accumulator = self.accumulator
        if accumulator is not None:
            try:
                attributes = accumulator.attributes()
            except Exception:
                log_failure("stream attributes")
        if error is None:
            call.end(attributes)
        else:
            call.fail(error, attributes)


def _traced_iterator(iterator: Iterator[Any], recorder: StreamRecorder) -> Iterator[Any]:
    # Per chunk: one generator step and one append. The batches of `FOLD_EVERY` come from
    # islice (C), so no length check runs per chunk; a short batch means the stream ended.
    chunks = recorder.chunks
    append = chunks.append
    try:
        while True:
            for item in islice(iterator, FOLD_EVERY):
                append(item)
                yield item
            if len(chunks) < FOLD_EVERY:
                break
            recorder.fold()
    except GeneratorExit:
        recorder.finish()
        raise
    except BaseException as error:
        recorder.finish(error)
        raise
    recorder.finish()


async def _traced_async_iterator(
    iterator: AsyncIterator[Any], recorder: StreamRecorder
) -> AsyncIterator[Any]:
    chunks = recorder.chunks
    append = chunks.append
    try:
        async for item in iterator:
            append(item)
            if len(chunks) >= FOLD_EVERY:
                recorder.fold()
            yield item
    except GeneratorExit:
        recorder.finish()
        raise
    except BaseException as error:
        recorder.finish(error)
        raise
    recorder.finish()


class _Close:
    """Installed as the stream's ``close``: the SDK's close, then the span's end.

    It also ends the span when the stream is dropped: the stream's ``__dict__`` holds the only
    reference to it, so it is freed with the stream (by reference counting, or by the garbage
    collector for a stream caught in a cycle) and its ``__del__`` runs. That costs one small
    object per stream, where a ``weakref.finalize`` costs a registry entry. It refers to the
    stream only weakly.
    """

    __slots__ = ("close", "recorder", "stream")

    def __init__(self, close: Any, stream: Any, recorder: StreamRecorder) -> None:
        self.close = close
        self.stream = weakref.ref(stream)
        self.recorder = recorder

    def __call__(self) -> Any:
        stream = self.stream()
        try:
            if stream is not None:
                return self.close(stream)
        finally:
            self.recorder.finish()

    def __del__(self) -> None:
        try:
            self.recorder.finish()
        except Exception:  # at interpreter exit the modules finish needs may be gone
            pass


class _AsyncClose(_Close):
    __slots__ = ()

    async def __call__(self) -> Any:
        stream = self.stream()
        try:
            if stream is not None:
                return await self.close(stream)
        finally:
            self.recorder.finish()


def record_stream(stream: Any, call: Call, accumulator: Accumulator) -> bool:
    """Hook `stream` (an SDK ``Stream`` / ``AsyncStream``) so that it records into `call`.

    Returns False, with the stream untouched, when it lacks the shape this relies on.
    """
    cls = type(stream)
    close = getattr(cls, "close", None)
    state = getattr(stream, "__dict__", None)
    if close is None or state is None or not ("_iterator" in state or hasattr(cls, "_iterator")):
        return False
    recorder = StreamRecorder(call, accumulator)
    iterator = stream._iterator  # Anthropic makes it on first use (a cached property)
    if hasattr(iterator, "__anext__"):
        state["_iterator"] = _traced_async_iterator(iterator, recorder)
        state["close"] = _AsyncClose(close, stream, recorder)
    else:
        state["_iterator"] = _traced_iterator(iterator, recorder)
        state["close"] = _Close(close, stream, recorder)
    return True


class _DroppedRecorder(StreamRecorder):
    """Also ends the span when dropped: a generator closed before its first step never runs
    the `finally` of its body, so only its frame's release (which frees this) tells."""

    __slots__ = ()

    def __del__(self) -> None:
        try:
            self.finish()
        except Exception:  # at interpreter exit the modules finish needs may be gone
            pass


def wrap_stream(stream: Any, call: Call, accumulator: Accumulator) -> Any:
    """A generator yielding what `stream` (an SDK's plain generator or async generator) yields,
    recording into `call`: for SDKs whose stream is a bare generator, which takes no hooks."""
    recorder = _DroppedRecorder(call, accumulator)
    if hasattr(stream, "__anext__"):
        return _traced_async_iterator(stream, recorder)
    return _traced_iterator(stream, recorder)
