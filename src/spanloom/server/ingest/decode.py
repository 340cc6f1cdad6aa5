"""Decode OTLP/HTTP request bodies (protobuf or JSON) and encode the responses.

OTLP/JSON differs from protobuf's canonical JSON mapping in one way that matters: trace and
span ids are hex strings, not base64. They are rewritten to base64 before `json_format` parses
the message; an id that is not hex becomes empty, so normalization rejects that span alone
(reported in `partial_success`) instead of failing the whole request.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from spanloom.server.json_text import may_hold_surrogates, without_lone_surrogates

# Fields holding ids, in both spellings json_format accepts.
_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_RESOURCE_SPANS = ("resourceSpans", "resource_spans")
_SCOPE_SPANS = ("scopeSpans", "scope_spans")


class UndecodableBodyError(ValueError):
    """The body is not an OTLP ExportTraceServiceRequest; the message says what was wrong."""


def decode_protobuf(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except ProtobufDecodeError as error:
        raise UndecodableBodyError(f"not an OTLP protobuf ExportTraceServiceRequest: {error}") from error
    return request


def _hex_to_base64(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError:
        return ""  # rejected per span by normalization


def _rewrite_ids(item: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        if name in item:
            item[name] = _hex_to_base64(item[name])


def _children(item: dict[str, Any], names: tuple[str, ...]) -> list[Any]:
    for name in names:
        value = item.get(name)
        if isinstance(value, list):
            return value
    return []


def decode_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise UndecodableBodyError(f"not valid JSON: {error}") from error
    except RecursionError:
        # Deeply nested arrays or objects: Python's parser recurses, and the limit is a 400, not a 500.
        raise UndecodableBodyError("not valid OTLP/JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise UndecodableBodyError("OTLP/JSON body must be an object with 'resourceSpans'")
    if may_hold_surrogates(body):
        # protobuf refuses a lone surrogate half, and would refuse the whole request for it.
        data = without_lone_surrogates(data)
    for resource_spans in _children(data, _RESOURCE_SPANS):
        if not isinstance(resource_spans, dict):
            continue
        for scope_spans in _children(resource_spans, _SCOPE_SPANS):
            if not isinstance(scope_spans, dict):
                continue
            for span in _children(scope_spans, ("spans",)):
                if isinstance(span, dict):
                    _rewrite_ids(span)
                    for link in _children(span, ("links",)):
                        if isinstance(link, dict):
                            _rewrite_ids(link)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, TypeError, ValueError) as error:
        raise UndecodableBodyError(f"not an OTLP/JSON ExportTraceServiceRequest: {error}") from error
    except RecursionError:
        raise UndecodableBodyError("not an OTLP/JSON ExportTraceServiceRequest: nested too deeply") from None
    return request


def encode_response(rejected_spans: int, error_message: str, as_json: bool) -> bytes:
    """An ExportTraceServiceResponse; `partial_success` is set only when spans were rejected."""
    response = ExportTraceServiceResponse()
    if rejected_spans or error_message:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = error_message
    if as_json:
        return json.dumps(json_format.MessageToDict(response)).encode()
    return response.SerializeToString()
