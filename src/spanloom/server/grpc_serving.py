"""How `spanloom serve` runs OTLP/gRPC beside uvicorn: one process, one store, one ingest pipeline.

One class builds the gRPC server, so the command and the tests run the same one.

- grpcio's threaded server: each export holds a worker thread from decoding to its commit, as an
  HTTP export holds one of uvicorn's; past `workers` exports in flight, the next ones wait their
  turn, and past `max_concurrent_rpcs` gRPC refuses them (RESOURCE_EXHAUSTED).
- The receive limit is SPANLOOM_MAX_BODY_BYTES, which gRPC applies to the message as sent and
  again after gzip decompression.
- A connection must complete its HTTP/2 handshake within `handshake_timeout_seconds` (10 s, as
  uvicorn's header deadline) or it is closed: gRPC's own default, 120 s, let a client hold a
  connection open by sending part of the preface.
- SO_REUSEPORT is off. gRPC turns it on by default on Linux, which let a second ``spanloom serve``
  bind the same port without an error and silently take a share of the exports into another
  database.
- The app starts the server with its lifespan and stops it first when shutting down: new exports
  are refused, and those in flight finish (committed, or refused with UNAVAILABLE when the store is
  already closing) before the evaluators and the store close.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc

from spanloom.server.auth.middleware import Auth
from spanloom.server.ingest.grpc_service import TraceExportService, rpc_handlers
from spanloom.server.ingest.pipeline import IngestPipeline

# Exports in flight at once: enough to keep the writer's queue fed from several senders while
# one request is decoded and others wait for their commit.
WORKERS = 16
MAX_CONCURRENT_RPCS = 1000  # like --max-connections for HTTP
# How long stop() lets exports in flight finish: more than one commit of a full writer queue.
STOP_GRACE_SECONDS = 30.0
HANDSHAKE_TIMEOUT_SECONDS = 10.0


class GrpcListenError(RuntimeError):
    """The gRPC port could not be bound (in use, or an address of another host)."""


def grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class GrpcIngestServer:
    """OTLP/gRPC on `host`:`port`, bound at once (port 0: any free one; see `port`)."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        auth: Auth | None,
        retry_after_seconds: int,
        host: str,
        port: int,
        workers: int = WORKERS,
        handshake_timeout_seconds: float = HANDSHAKE_TIMEOUT_SECONDS,
    ) -> None:
        max_message = pipeline.limits.max_body_bytes
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spanloom-grpc")
        self._server = grpc.server(
            self._executor,
            handlers=rpc_handlers(TraceExportService(pipeline, auth, retry_after_seconds)),
            options=[
                ("grpc.max_receive_message_length", max_message),
                ("grpc.so_reuseport", 0),
                ("grpc.server_handshake_timeout_ms", int(handshake_timeout_seconds * 1000)),
            ],
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
        )
        address = grpc_address(host, port)
        try:
            self.port: int = self._server.add_insecure_port(address)
        except RuntimeError:
            self._executor.shutdown(wait=False)
            raise GrpcListenError(
                f"cannot listen for OTLP/gRPC on {address}: the port is in use, or the address is not "
                "one of this host's"
            ) from None
        self.host = host
        self._lock = threading.Lock()
        self._started = self._stopped = False

    @property
    def address(self) -> str:
        return grpc_address(self.host, self.port)

    def start(self) -> None:
        with self._lock:
            if not self._started and not self._stopped:
                self._server.start()
                self._started = True

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Refuse new exports and wait for those in flight (at most `grace_seconds`). Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            if not self._started:
                # grpcio releases a bound port only by stopping a started server (an unstarted one
                # holds it until the process exits): nothing was served, so nothing waits.
                self._server.start()
                grace_seconds = 0
        self._server.stop(grace_seconds).wait()
        self._executor.shutdown(wait=True)
