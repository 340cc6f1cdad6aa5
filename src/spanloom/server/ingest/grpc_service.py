"""OTLP/gRPC ingest: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``, answered only
after commit, under the rules of ``POST /v1/traces`` (pipeline.py), mapped the way the OTLP
specification maps them for gRPC:

- a message over SPANLOOM_MAX_BODY_BYTES, also after gzip decompression, is refused by gRPC itself
  (the server's receive limit, grpc_serving.py) with RESOURCE_EXHAUSTED and no RetryInfo, which
  the specification makes not retryable (HTTP: 413);
- a message that does not decode, or holds more spans or values than one request may:
  INVALID_ARGUMENT, not retryable (HTTP: 400 and 413). Not RESOURCE_EXHAUSTED for the counts: the
  Python exporter retries that code whatever the server says, so a batch that can never fit
  would be sent again and again until its deadline;
- a saturated writer, a write the storage failed, a server shutting down, and an address held back
  for too many wrong keys: UNAVAILABLE with RetryInfo (HTTP: 503 and 429 with Retry-After). The
  RetryInfo travels in the status details (``grpc-status-details-bin``, which the Go and Java
  exporters and the Collector read) and as the ``google.rpc.retryinfo-bin`` trailer (which the
  Python exporter reads);
- keys from the ``authorization: Bearer KEY`` (or ``x-api-key``) metadata, with the same roles,
  project scopes and wrong-key throttle as HTTP: no key or a wrong one UNAUTHENTICATED, a key
  without the ingest role PERMISSION_DENIED;
- spans rejected in part are counted in the response's partial_success, as over HTTP.

The request reaches `TraceExportService.Export` as bytes, not as the message the generated
``add_TraceServiceServicer_to_server`` would decode first: the value budget is counted on the wire
before anything is decoded (value_budget.py), which a decoded message would have skipped.

Metrics and logs exports (what ``opentelemetry-instrument`` also sends to the same endpoint by
default) are answered UNIMPLEMENTED with a message saying how to turn them off, rather than gRPC's
bare "Method not found!".
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NoReturn
from urllib.parse import unquote

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from spanloom.server.auth.keys import Principal
from spanloom.server.auth.middleware import Auth, TooManyWrongKeysError, key_from_headers
from spanloom.server.ingest.decode import encode_response
from spanloom.server.ingest.pipeline import IngestPipeline, IngestRefusedError

RETRY_INFO_TRAILER = "google.rpc.retryinfo-bin"
EXPORT = "Export"
TRACE_SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
# Other OTLP signals sent to this port: the variable that turns each off in an OpenTelemetry SDK.
OTHER_SIGNALS = {
    f"/{metrics_service_pb2.DESCRIPTOR.services_by_name['MetricsService'].full_name}/{EXPORT}": (
        "metrics",
        "OTEL_METRICS_EXPORTER",
    ),
    f"/{logs_service_pb2.DESCRIPTOR.services_by_name['LogsService'].full_name}/{EXPORT}": (
        "logs",
        "OTEL_LOGS_EXPORTER",
    ),
}


def peer_host(peer: str) -> str:
    """The address in gRPC's peer string (``ipv4:127.0.0.1:5000``, ``ipv6:%5B::1%5D:5000``), as
    HTTP names a client (``127.0.0.1``, ``::1``): the wrong-key throttle counts one address the same
    whichever transport it uses."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return peer
    return unquote(rest).rpartition(":")[0].strip("[]")


def _metadata_value(metadata: Sequence[tuple[str, str | bytes]], name: str) -> str | None:
    for key, value in metadata:
        if key == name:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: ServicerContext.abort raises")


def abort_with_retry(
    context: grpc.ServicerContext, code: grpc.StatusCode, message: str, retry_after_seconds: int
) -> NoReturn:
    """End the call with `code` and RetryInfo saying when to send the same request again."""
    retry = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry_after_seconds))
    detail = AnyMessage()
    detail.Pack(retry)
    status = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))
    trailer = (RETRY_INFO_TRAILER, retry.SerializeToString())
    context.set_trailing_metadata((*status.trailing_metadata, trailer))
    abort(context, status.code, status.details)


class TraceExportService(trace_service_pb2_grpc.TraceServiceServicer):
    """`Export` over the server's one IngestPipeline. `auth`: None when no keys are configured."""

    def __init__(self, pipeline: IngestPipeline, auth: Auth | None, retry_after_seconds: int) -> None:
        self.pipeline = pipeline
        self.auth = auth
        self.retry_after_seconds = retry_after_seconds

    def _principal(self, context: grpc.ServicerContext, auth: Auth) -> Principal:
        metadata = context.invocation_metadata() or ()
        authorization = _metadata_value(metadata, "authorization")
        key = key_from_headers(authorization, _metadata_value(metadata, "x-api-key"))
        principal = None
        if key is not None:
            try:
                principal = auth.principal_for_key(key, peer_host(context.peer()))
            except TooManyWrongKeysError as held_back:
                abort_with_retry(
                    context,
                    grpc.StatusCode.UNAVAILABLE,
                    "too many wrong keys from this address; try again later",
                    held_back.retry_after,
                )
        if principal is None:
            abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "a valid API key is required (metadata authorization: Bearer KEY)",
            )
        if not principal.can_ingest:
            abort(context, grpc.StatusCode.PERMISSION_DENIED, "this key may not send spans")
        return principal

    def Export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        projects = self._principal(context, self.auth).projects if self.auth is not None else None
        try:
            outcome = self.pipeline.submit(request, False, projects).outcome()
        except IngestRefusedError as refused:
            self.pipeline.refused(refused.code)
            if refused.retry:
                wait = self.retry_after_seconds
                abort_with_retry(context, grpc.StatusCode.UNAVAILABLE, refused.message, wait)
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{refused.code}: {refused.message}")
        return encode_response(outcome.rejected, outcome.error_message, as_json=False)


def _refuse_signal(signal: str, variable: str, request: bytes, context: grpc.ServicerContext) -> NoReturn:
    abort(
        context,
        grpc.StatusCode.UNIMPLEMENTED,
        f"spanloom stores traces only, not {signal}: set {variable}=none in the sending app",
    )


class _OtherSignals(grpc.GenericRpcHandler):
    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        signal = OTHER_SIGNALS.get(handler_call_details.method)
        return grpc.unary_unary_rpc_method_handler(partial(_refuse_signal, *signal)) if signal else None


def rpc_handlers(service: TraceExportService) -> tuple[grpc.GenericRpcHandler, ...]:
    """The handlers a grpc.server needs: traces to `service`, request and response as bytes."""
    export = grpc.unary_unary_rpc_method_handler(service.Export)
    return grpc.method_handlers_generic_handler(TRACE_SERVICE, {EXPORT: export}), _OtherSignals()
