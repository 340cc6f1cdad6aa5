"""How many values a request body would become, counted before it is decoded.

Decoding builds an object for every protobuf message in the body, and nothing in a message's
size bounds how many it holds: an empty array element is two bytes on the wire and about 45 bytes
decoded, an empty span two bytes and about 170. A 16 KB gzip body of four million empty nested
array elements took the server from 64 MB to 600 MB (and four at once to 2.5 GB) before any
limit applied to what it held, because limits applied to the decoded request.

So the body is counted first:

- protobuf: every byte that could begin a length-delimited field is counted in C
  (`bytes.translate`); a body with few enough of them cannot hold too many messages and is decoded
  at once, which covers ordinary exports (about one such byte per 19 bytes of span data). Others are
  walked on the wire, without decoding, along the OTLP message structure: spans over
  `max_spans` answer 413 ``too_many_spans``, other messages (attributes, values, array elements,
  events, links...) over `max_values` 413 ``too_many_values``.
- JSON: ``,``, ``:``, ``[`` and ``{`` outside strings bound the number of values Python builds.
"""

from __future__ import annotations

import re

from spanloom.server.ingest.decode import UndecodableBodyError
from spanloom.server.ingest.limits import TooManySpansError


class TooManyValuesError(ValueError):
    """The body holds more values than one request may (answered 413)."""


# Bytes that cannot begin a length-delimited field's tag (wire type 2 in the low three bits).
_NOT_LENGTH_DELIMITED = bytes(byte for byte in range(256) if byte & 7 != 2)
# protobuf's own recursion limit for decoding (deeper bodies fail to decode anyway).
MAX_NESTING = 100
# Without a walk, a body with at most max_values / _QUICK_SHARE candidate bytes is decoded at once:
# even if every candidate were an empty span, it would cost a fraction of the full budget.
_QUICK_SHARE = 4

# The OTLP trace request's message fields, per message: field number -> the message it holds.
(_REQUEST, _RESOURCE_SPANS, _RESOURCE, _SCOPE_SPANS, _SCOPE, _SPAN, _EVENT, _LINK, _STATUS) = range(9)
_KEY_VALUE, _ANY_VALUE, _ARRAY, _KEY_VALUE_LIST = range(9, 13)
_MESSAGE_FIELDS: dict[int, dict[int, int]] = {
    _REQUEST: {1: _RESOURCE_SPANS},
    _RESOURCE_SPANS: {1: _RESOURCE, 2: _SCOPE_SPANS},
    _RESOURCE: {1: _KEY_VALUE},
    _SCOPE_SPANS: {1: _SCOPE, 2: _SPAN},
    _SCOPE: {3: _KEY_VALUE},
    _SPAN: {9: _KEY_VALUE, 11: _EVENT, 13: _LINK, 15: _STATUS},
    _EVENT: {3: _KEY_VALUE},
    _LINK: {4: _KEY_VALUE},
    _STATUS: {},
    _KEY_VALUE: {2: _ANY_VALUE},
    _ANY_VALUE: {5: _ARRAY, 6: _KEY_VALUE_LIST},
    _ARRAY: {1: _ANY_VALUE},
    _KEY_VALUE_LIST: {1: _KEY_VALUE},
}


def _too_many_values(max_values: int) -> TooManyValuesError:
    return TooManyValuesError(
        f"the body holds more than {max_values:,} values (attributes, array and map elements, events, "
        "links); SPANLOOM_MAX_VALUES_PER_REQUEST"
    )


def _varint(body: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = body[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise UndecodableBodyError("not an OTLP protobuf ExportTraceServiceRequest: a varint is too long")


def check_protobuf_budget(body: bytes, max_values: int, max_spans: int) -> None:
    """Raise TooManySpansError or TooManyValuesError when decoding `body` would build too much;
    UndecodableBodyError when its structure is broken (decoding would fail the same way)."""
    if len(body.translate(None, _NOT_LENGTH_DELIMITED)) * _QUICK_SHARE <= max_values:
        return
    spans = values = 0
    # Depth first: the stack holds where each enclosing message's walk goes on, so it is as deep
    # as the nesting (refused past protobuf's own limit), never as long as a list of elements.
    ancestors: list[tuple[int, int, int]] = []
    kind, position, end = _REQUEST, 0, len(body)
    try:
        while True:
            if position >= end:
                if position > end:
                    raise IndexError
                if not ancestors:
                    return
                kind, position, end = ancestors.pop()
                continue
            tag = body[position]
            position += 1
            if tag & 0x80:
                tag, position = _varint(body, position - 1)
            wire_type = tag & 7
            if wire_type == 2:
                length = body[position]
                position += 1
                if length & 0x80:
                    length, position = _varint(body, position - 1)
                if position + length > end:
                    raise IndexError
                child = _MESSAGE_FIELDS[kind].get(tag >> 3)
                if child is None:
                    position += length
                    continue
                if child == _SPAN:
                    spans += 1
                    if spans > max_spans:
                        raise TooManySpansError(
                            f"more than {max_spans} spans in one request; the limit is {max_spans} "
                            "(SPANLOOM_MAX_SPANS_PER_REQUEST): send smaller batches"
                        )
                else:
                    values += 1
                    if values > max_values:
                        raise _too_many_values(max_values)
                if len(ancestors) >= MAX_NESTING:
                    raise UndecodableBodyError(
                        "not an OTLP protobuf ExportTraceServiceRequest: nested too deeply"
                    )
                ancestors.append((kind, position + length, end))
                kind, end = child, position + length
            elif wire_type == 0:
                _, position = _varint(body, position)
            elif wire_type == 1:
                position += 8
            elif wire_type == 5:
                position += 4
            else:  # groups (3, 4) are not in OTLP; 6 and 7 are not wire types
                raise UndecodableBodyError(
                    f"not an OTLP protobuf ExportTraceServiceRequest: wire type {wire_type}"
                )
    except IndexError:
        raise UndecodableBodyError(
            "not an OTLP protobuf ExportTraceServiceRequest: a field runs past the end of its message"
        ) from None


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _json_tokens(text: bytes, start: int, end: int) -> int:
    return sum(text.count(mark, start, end) for mark in (b",", b":", b"[", b"{"))


def check_json_budget(body: bytes, max_values: int) -> None:
    """Raise TooManyValuesError when parsing `body` would build more than about `max_values`
    values: separators and brackets outside strings count them from above."""
    if _json_tokens(body, 0, len(body)) <= max_values:
        return
    # Counted again in the gaps between strings, in place: a copy of the body without its strings
    # (re.sub) cost each request twice the body, and for millions of tiny strings 60 times it.
    # Every string after the first follows a separator outside strings, so past max_values + 1
    # strings the body is over the budget whatever the gaps hold: the walk stops there.
    outside = gap_start = 0
    for number, string in enumerate(_JSON_STRING.finditer(body)):
        outside += _json_tokens(body, gap_start, string.start())
        if outside > max_values or number > max_values:
            raise _too_many_values(max_values)
        gap_start = string.end()
    if outside + _json_tokens(body, gap_start, len(body)) > max_values:
        raise _too_many_values(max_values)
