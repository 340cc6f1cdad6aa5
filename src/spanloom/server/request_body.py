"""Reading a request body under a size limit, before and after gzip decompression.

Shared by ingest (``/v1/traces``) and the JSON API's writes (``POST /api/evaluations``): both
refuse at once on a Content-Length over the limit, and while streaming as soon as the bytes read
pass it, so a large body costs at most `limit` bytes of memory before its 413.

Decompression is incremental with a cap on the output, so a small gzip bomb costs at most `limit`
bytes too. A gzip body may hold several members (RFC 1952 §2.2: ``gzip(a) + gzip(b)`` is valid and
means ``a + b``): every member is decoded, their output counting against one limit, and bytes after
the last member that do not start another one are refused, never silently dropped.
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


def _bad_gzip(why: str) -> HttpError:
    return HttpError(400, "bad_encoding", f"the body is not valid gzip: {why}")


def check_encoding(content_encoding: str | None) -> str:
    """The body's encoding, lower-cased; 415 for one this server does not speak."""
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ACCEPTED_ENCODINGS:
        raise HttpError(
            415, "unsupported_encoding", f"content encoding {encoding!r} is not supported; use gzip"
        )
    return encoding


def check_declared_length(content_length: str | None, limit: int) -> None:
    """Refuse at once when Content-Length already says the body is too large."""
    if (
        content_length
        and content_length.strip().isdecimal()
        and len(content_length.strip()) <= 20
        and int(content_length) > limit
    ):
        raise _too_large(limit)


class _GzipMembers:
    """Inflates one gzip member after another, never producing more than the limit allows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.produced = 0
        self.parts: list[bytes] = []
        self.finished_members = 0
        self._inflater = zlib.decompressobj(GZIP_WBITS)

    def _trailing(self) -> str:
        return "bytes after the end of the gzip stream are not another gzip member"

    def feed(self, data: bytes) -> None:
        while data:
            if self._inflater.eof:
                self.finished_members += 1
                self._inflater = zlib.decompressobj(GZIP_WBITS)
            try:
                # At most one byte past the limit: enough to know it is over.
                output = self._inflater.decompress(data, self.limit - self.produced + 1)
            except zlib.error as error:
                raise _bad_gzip(self._trailing() if self.finished_members else str(error)) from None
            self.produced += len(output)
            if self.produced > self.limit:
                raise _too_large(self.limit, after_decompression=True)
            self.parts.append(output)
            data = self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail

    def finish(self) -> bytes:
        if not self._inflater.eof:
            if self.finished_members:
                raise _bad_gzip(self._trailing())
            raise HttpError(400, "bad_encoding", "the gzip body ended before the end of its stream")
        return b"".join(self.parts)


async def read_limited(chunks: AsyncIterator[bytes], encoding: str, limit: int) -> bytes:
    """The whole body, decompressed if `encoding` is gzip, refusing anything over `limit` bytes."""
    received = 0
    if encoding != "gzip":
        parts: list[bytes] = []
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise _too_large(limit)
            parts.append(chunk)
        return b"".join(parts)
    members = _GzipMembers(limit)
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        members.feed(chunk)
    return members.finish()
