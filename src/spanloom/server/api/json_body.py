"""The JSON API's response bodies, encoded off the event loop, the big ones a bounded chunk at a time.

A handler that returns a dict has FastAPI encode it on the event loop once the handler's worker
thread is done. For a 1,000-span trace page (about 4 MB) that held the loop for tens of
milliseconds per page under ingest, and while it did, no ingest request was read or answered and
every other read waited: the ingest rate dropped by a third while one client read a big trace,
and the sessions list's p95 went past 100 ms. So the handlers answer with bytes instead:

- `json_response` encodes the whole body in the handler's own worker thread (the bodies of lists
  and sessions are bounded by their page sizes);
- `streamed_json` sends a list of many items (a trace's spans) as a stream: each chunk of at most
  `CHUNK_ITEMS` items is turned into JSON in a worker thread when the server is ready to send it,
  so neither the event loop nor the GIL is held for the whole body at once, and the body is never
  in memory whole.

Both encode as FastAPI does (pydantic-core, NaN and infinities as null), so the bytes are the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from pydantic import TypeAdapter
from starlette.responses import Response, StreamingResponse

JSON_TYPE = "application/json"
# Items per chunk of a streamed list: a chunk of spans is a few hundred KB and a few milliseconds
# of CPU, short enough that ingest's threads and the event loop get their turns in between.
CHUNK_ITEMS = 100

Item = TypeVar("Item")
# What FastAPI encodes a handler's dict with (pydantic-core; NaN and infinities as null).
_ANY = TypeAdapter(Any)


def encode(value: Any) -> bytes:
    """JSON bytes of a JSON-ready value, as FastAPI would write them."""
    return _ANY.dump_json(value)


def json_response(payload: Any, status_code: int = 200) -> Response:
    """`payload` as a JSON response, encoded now, in the calling (worker) thread."""
    return Response(encode(payload), status_code=status_code, media_type=JSON_TYPE)


def _object_items(value: dict[str, Any]) -> bytes:
    """The members of a JSON object without its braces (b"" for an empty one)."""
    return encode(value)[1:-1]


def stream_chunks(
    head: dict[str, Any],
    key: str,
    items: Sequence[Item],
    item_json: Callable[[Item], Any],
    tail: dict[str, Any],
    chunk_items: int = CHUNK_ITEMS,
    after_chunk: Callable[[float], object] | None = None,
) -> Iterator[bytes]:
    """The JSON object {**head, key: [item_json(item) for item in items], **tail}, in pieces:
    each piece holds at most `chunk_items` items, built only when it is asked for. `after_chunk`
    hears the CPU seconds each chunk of items took to build (read_pacing.py)."""
    head_members = _object_items(head)
    yield b"{" + head_members + (b"," if head_members else b"") + encode(key) + b":["
    for start in range(0, len(items), chunk_items):
        began = time.thread_time()
        part = encode([item_json(item) for item in items[start : start + chunk_items]])[1:-1]
        if after_chunk is not None:
            after_chunk(time.thread_time() - began)
        yield (b"," if start else b"") + part
    tail_members = _object_items(tail)
    yield b"]" + (b"," + tail_members if tail_members else b"") + b"}"


def streamed_json(
    head: dict[str, Any],
    key: str,
    items: Sequence[Item],
    item_json: Callable[[Item], Any],
    tail: dict[str, Any],
    chunk_items: int = CHUNK_ITEMS,
    after_chunk: Callable[[float], object] | None = None,
) -> StreamingResponse:
    """`stream_chunks` as a response. The iterator is a plain one: Starlette takes each chunk
    from it in a worker thread, never on the event loop (a pause in `after_chunk` too)."""
    return StreamingResponse(
        stream_chunks(head, key, items, item_json, tail, chunk_items, after_chunk), media_type=JSON_TYPE
    )
