"""Reading a request body under a size limit, before and after gzip decompression.

Decompression is incremental with a cap on the output, so a small gzip bomb costs at most
`limit` bytes of memory before it is refused with 413.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from spanloom.server.errors import HttpError

GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer, not a raw zlib stream
ACCEPTED_ENCODINGS = ("", "identity", "gzip")


def _too_large(limit: int, after_decompression: bool = False) -> HttpError:
    where = " after decompression" if after_decompression else ""
    return HttpError(413, "payload_too_large", f"the body is larger than {limit} bytes{where}")


def check_declared_length(content_length: str | None, limit: int) -> None:
    """Refuse at once when Content-Length already says the body is too large."""
    if (
        content_length
        and content_length.strip().isdecimal()
        and len(content_length.strip()) <= 20
        and int(content_length) > limit
    ):
        raise _too_large(limit)


async def read_limited(chunks: AsyncIterator[bytes], encoding: str, limit: int) -> bytes:
    """The whole body, decompressed if `encoding` is gzip, refusing anything over `limit` bytes."""
    received = 0
    parts: list[bytes] = []
    inflater = zlib.decompressobj(GZIP_WBITS) if encoding == "gzip" else None
    produced = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        if inflater is None:
            parts.append(chunk)
            continue
        data = chunk
        while data:
            try:
                # At most one byte past the limit: enough to know it is over.
                output = inflater.decompress(data, limit - produced + 1)
            except zlib.error as error:
                raise HttpError(400, "bad_encoding", f"the body is not valid gzip: {error}") from None
            produced += len(output)
            if produced > limit:
                raise _too_large(limit, after_decompression=True)
            parts.append(output)
            data = inflater.unconsumed_tail
            if inflater.eof:
                break
    if inflater is not None and not inflater.eof:
        raise HttpError(400, "bad_encoding", "the gzip body ended before the end of its stream")
    return b"".join(parts)
