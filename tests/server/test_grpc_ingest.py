"""OTLP/gRPC ingest: the real OpenTelemetry gRPC exporter against `spanloom serve`'s gRPC port, under
the same rules as OTLP/HTTP (one pipeline, one store, the same keys and throttle), with the statuses
the OTLP specification gives gRPC."""

from __future__ import annotations

import gzip
import json
import socket
import time
from pathlib import Path

import grpc
import pytest
from _server_kit import length_delimited, make_request, make_turn, run_server, wait_for
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from spanloom import SessionSpanProcessor, using_session, using_user
from spanloom.server.evaluators.config import EvaluatorConfig, save_configs
from spanloom.server.grpc_serving import GrpcIngestServer
from spanloom.server.ingest.grpc_service import RETRY_INFO_TRAILER, peer_host

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
INGEST = "grpc-ingest-key-0123456789abcdef"
READ = "grpc-read-key-0123456789abcdefgh"
P1_INGEST = "grpc-p1-ingest-key-0123456789ab"


def conversation_spans(project: str = "shop") -> list[ReadableSpan]:
    """Spans as an app makes them with the SDK: two users' conversations, a failing turn."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"project.name": project, "service.name": "bot"}))
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("support-bot")
    conversations = (
        ("conv-1", "alice", ("Where is my order A-1001?", "And the invoice for it?")),
        ("conv-2", "bob", ("Cancel my subscription, please.",)),
    )
    for session_id, user_id, questions in conversations:
        for question in questions:
            with using_session(session_id), using_user(user_id):
                attributes = {"openinference.span.kind": "CHAIN", "input.value": question}
                with tracer.start_as_current_span("turn", attributes=attributes) as turn:
                    llm = {
                        "openinference.span.kind": "LLM",
                        "llm.model_name": "gpt-4o-mini",
                        "llm.token_count.prompt": 120 + len(question),
                        "llm.token_count.completion": 31,
                        "output.value": f"About '{question}': it is on its way.",
                    }
                    with tracer.start_as_current_span("ChatCompletion", attributes=llm) as call:
                        if "Cancel" in question:
                            call.set_status(Status(StatusCode.ERROR, "upstream timeout"))
                    turn.set_attribute("output.value", f"About '{question}': it is on its way.")
    provider.shutdown()
    return list(memory.get_finished_spans())


def grpc_exporter(target: str, **options: object) -> GrpcSpanExporter:
    return GrpcSpanExporter(endpoint=f"http://{target}", insecure=True, **options)  # type: ignore[arg-type]


def export_bytes(
    target: str, body: bytes, metadata: tuple[tuple[str, str], ...] = (), gzip_it: bool = False
) -> ExportTraceServiceResponse:
    """Send `body` as it is (bytes the protobuf library would not build, too) to TraceService/Export."""
    compression = grpc.Compression.Gzip if gzip_it else None
    with grpc.insecure_channel(target, compression=compression) as channel:
        export = channel.unary_unary(EXPORT, response_deserializer=ExportTraceServiceResponse.FromString)
        return export(body, metadata=metadata, timeout=30)


def refusal(target: str, body: bytes, **options: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        export_bytes(target, body, **options)  # type: ignore[arg-type]
    return raised.value


def retry_delays(error: grpc.RpcError) -> tuple[float, float]:
    """RetryInfo's delay as the status details carry it (Go, Java, the Collector read these) and
    as the google.rpc.retryinfo-bin trailer carries it (the Python exporter reads that)."""
    status = rpc_status.from_call(error)
    assert status is not None, "no status details"
    (detail,) = status.details
    from_details = error_details_pb2.RetryInfo()
    assert detail.Unpack(from_details)
    trailer = dict(error.trailing_metadata())[RETRY_INFO_TRAILER]
    from_trailer = error_details_pb2.RetryInfo.FromString(trailer)
    return from_details.retry_delay.ToTimedelta().total_seconds(), from_trailer.retry_delay.seconds


def stored_spans(server) -> int:  # type: ignore[no-untyped-def]
    return sum(project["span_count"] for project in server.get_json("/api/projects")["items"])


def write_keys(path: Path) -> Path:
    entries = [
        {"key": INGEST, "role": "ingest", "projects": "*"},
        {"key": READ, "role": "read", "projects": "*"},
        {"key": P1_INGEST, "role": "ingest", "projects": ["p1"]},
    ]
    path.write_text(json.dumps({"keys": entries}))
    return path


def test_spans_sent_over_grpc_land_and_group_like_http_ones(tmp_path: Path):
    spans = conversation_spans()
    with (
        run_server(tmp_path / "grpc.db", grpc=True) as via_grpc,
        run_server(tmp_path / "http.db") as via_http,
    ):
        assert via_grpc.grpc_target is not None
        exporter = grpc_exporter(via_grpc.grpc_target)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        http = HttpSpanExporter(endpoint=via_http.traces_endpoint)
        assert http.export(spans) is SpanExportResult.SUCCESS
        http.shutdown()

        sessions = via_grpc.get_json("/api/sessions")["items"]
        assert {(s["session_id"], s["user_id"], s["trace_count"]) for s in sessions} == {
            ("conv-1", "alice", 2),
            ("conv-2", "bob", 1),
        }
        trace_id = via_grpc.get_json("/api/traces", session_id="conv-2")["items"][0]["trace_id"]
        # Every list and detail reads the same whichever transport brought the spans.
        for path in (
            "/api/projects",
            "/api/sessions",
            "/api/sessions/conv-1",
            "/api/sessions/conv-2",
            "/api/users",
            "/api/users/alice",
            "/api/traces",
            f"/api/traces/{trace_id}",
        ):
            assert via_grpc.get_json(path) == via_http.get_json(path), path
        assert via_grpc.get_json("/api/sessions/conv-2")["first_failing_turn"] is not None


def test_the_trace_budget_and_the_evaluators_apply_to_grpc_exports_too(tmp_path: Path):
    evaluators = tmp_path / "evaluators.json"
    save_configs(evaluators, [EvaluatorConfig("fast", "latency", "test", {"threshold_ms": 1000})])
    with run_server(
        tmp_path / "shared.db", grpc=True, max_spans_per_trace=3, evaluators_file=evaluators
    ) as server:
        assert server.grpc_target is not None
        trace_id, spans = make_turn("s-shared", "u-shared", tool=True)  # three spans
        assert server.post_spans(make_request(spans[:2])).status_code == 200
        # One span more over gRPC fits the trace's budget of three; the next one does not.
        first = export_bytes(server.grpc_target, make_request(spans[2:]).SerializeToString())
        assert not first.HasField("partial_success")
        _, more = make_turn("s-shared", "u-shared")
        for span in more:
            span.trace_id = trace_id
        second = export_bytes(server.grpc_target, make_request(more).SerializeToString())
        assert second.partial_success.rejected_spans == 2
        assert "SPANLOOM_MAX_SPANS_PER_TRACE" in second.partial_success.error_message
        assert server.get_json(f"/api/traces/{trace_id.hex()}")["span_count"] == 3

        # The server evaluators judge what gRPC committed, as they judge what HTTP did.
        def judged() -> bool:
            summary = server.get_json("/api/evaluations/summary", group_by="project")["items"]
            return sum(row["count"] for row in summary) >= 1

        wait_for(judged, what="the evaluators to judge the LLM span")


def test_gzip_exports_are_stored_and_the_size_limit_holds_after_decompression(tmp_path: Path):
    limit = 64 * 1024
    with run_server(tmp_path / "gzip.db", grpc=True, max_body_bytes=limit) as server:
        assert server.grpc_target is not None
        exporter = grpc_exporter(server.grpc_target, compression=Compression.Gzip)
        assert exporter.export(conversation_spans()) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert stored_spans(server) == 6

        # A request four times the limit, of one letter repeated: a few hundred bytes once gzipped.
        _, spans = make_turn("s-bomb", "u-bomb", answer="a" * (4 * limit))
        bomb = make_request(spans).SerializeToString()
        assert len(gzip.compress(bomb)) < limit // 16
        error = refusal(server.grpc_target, bomb, gzip_it=True)
        # The spec's code for a message over the limit; without RetryInfo, so not retried.
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
        assert RETRY_INFO_TRAILER not in dict(error.trailing_metadata() or ())
        assert refusal(server.grpc_target, bomb).code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stored_spans(server) == 6


def test_an_oversize_export_is_refused_and_the_server_goes_on(tmp_path: Path):
    with run_server(
        tmp_path / "limits.db",
        grpc=True,
        max_body_bytes=64 * 1024,
        max_spans_per_request=10,
        max_values_per_request=1000,
    ) as server:
        target = server.grpc_target
        assert target is not None
        # The real exporter: a batch over the byte limit fails, and nothing of it is stored.
        large = conversation_spans()[:2]
        exporter = grpc_exporter(target, timeout=2)
        big_answer = "It is on its way. " * 5000
        oversize = [
            ReadableSpan(
                name=span.name,
                context=span.context,
                parent=span.parent,
                resource=span.resource,
                attributes={**(span.attributes or {}), "output.value": big_answer},
                start_time=span.start_time,
                end_time=span.end_time,
            )
            for span in large
        ]
        assert exporter.export(oversize) is SpanExportResult.FAILURE
        assert server.get_json("/api/projects")["items"] == []

        # More spans than one request may hold: INVALID_ARGUMENT, which no exporter retries.
        spans = [span for _ in range(4) for span in make_turn("s-many", "u-many", tool=True)[1]]
        error = refusal(target, make_request(spans).SerializeToString())
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "too_many_spans" in error.details() and "SPANLOOM_MAX_SPANS_PER_REQUEST" in error.details()
        # More values than one request may hold, in 6 KB: counted on the wire, before decoding.
        empty_arrays = length_delimited(1, length_delimited(5, b"")) * 1500
        attribute = length_delimited(1, b"big") + length_delimited(2, length_delimited(5, empty_arrays))
        span = length_delimited(1, bytes(range(1, 17))) + length_delimited(2, bytes(range(1, 9)))
        body = length_delimited(
            1, length_delimited(2, length_delimited(2, span + length_delimited(9, attribute)))
        )
        error = refusal(target, body)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "too_many_values" in error.details()
        # Bytes that are no OTLP request.
        error = refusal(target, b"\x0a\xff\xff\xff")
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "undecodable" in error.details()

        # The server goes on: the exporter's next batch is stored.
        assert exporter.export(large) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert stored_spans(server) == 2


def test_a_full_store_answers_unavailable_with_retry_info_and_recovers(tmp_path: Path):
    with run_server(tmp_path / "full.db", grpc=True, max_db_pages=200) as server:
        target = server.grpc_target
        assert target is not None
        error = None
        for number in range(200):
            spans = [s for i in range(20) for s in make_turn(f"fill{number}", "u", i, answer="x" * 2000)[1]]
            body = make_request(spans).SerializeToString()
            try:
                export_bytes(target, body)
            except grpc.RpcError as refused:
                error = refused
                break
        assert error is not None, "the page limit was never reached"
        assert error.code() is grpc.StatusCode.UNAVAILABLE and "storage is full" in error.details()
        assert retry_delays(error) == (1.0, 1)
        stored = stored_spans(server)
        server.store.set_max_db_pages(None)
        assert not export_bytes(target, body).HasField("partial_success")
        assert stored_spans(server) == stored + len(spans)


def test_keys_come_from_the_authorization_metadata(tmp_path: Path):
    with run_server(tmp_path / "keys.db", grpc=True, keys_file=write_keys(tmp_path / "keys.json")) as server:
        target = server.grpc_target
        assert target is not None
        spans = conversation_spans("p1")
        wrong = grpc_exporter(target, headers={"authorization": "Bearer not-a-key-0123456789"})
        assert wrong.export(spans) is SpanExportResult.FAILURE
        wrong.shutdown()

        body = make_request(make_turn("s-key", "u-key")[1], {"project.name": "p1"}).SerializeToString()
        for metadata, code in (
            ((), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", "Bearer not-a-key-0123456789"),), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", f"Basic {INGEST}"),), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", f"Bearer {READ}"),), grpc.StatusCode.PERMISSION_DENIED),
        ):
            assert refusal(target, body, metadata=metadata).code() is code, metadata
        server.client.headers["Authorization"] = f"Bearer {READ}"
        assert server.get_json("/api/projects")["items"] == []

        right = grpc_exporter(target, headers={"authorization": f"Bearer {INGEST}"})
        assert right.export(spans) is SpanExportResult.SUCCESS
        right.shutdown()
        assert not export_bytes(target, body, metadata=(("x-api-key", INGEST),)).HasField("partial_success")
        # A per-project key: spans of another project are rejected in partial_success, the rest stored.
        _, other = make_turn("s-p2", "u-p2")
        mixed = make_request(make_turn("s-p1", "u-p1")[1], {"project.name": "p1"})
        mixed.resource_spans.extend(make_request(other, {"project.name": "p2"}).resource_spans)
        answer = export_bytes(target, mixed.SerializeToString(), (("authorization", f"Bearer {P1_INGEST}"),))
        assert answer.partial_success.rejected_spans == 2
        assert "may not send spans of the project" in answer.partial_success.error_message
        projects = {p["name"]: p["span_count"] for p in server.get_json("/api/projects")["items"]}
        assert projects == {"p1": 6 + 2 + 2}


def test_wrong_keys_over_grpc_and_http_count_against_one_address(tmp_path: Path):
    with run_server(
        tmp_path / "throttle.db",
        grpc=True,
        keys_file=write_keys(tmp_path / "keys.json"),
        max_key_failures_per_minute=3,
    ) as server:
        target = server.grpc_target
        assert target is not None
        body = make_request(make_turn("s-t", "u-t")[1]).SerializeToString()
        for _ in range(2):
            guess = refusal(target, body, metadata=(("authorization", "Bearer guess-0123456789abcdef"),))
            assert guess.code() is grpc.StatusCode.UNAUTHENTICATED
        guess = server.client.get("/api/sessions", headers={"Authorization": "Bearer guess-0123456789abcdef"})
        assert guess.status_code == 401
        # Three wrong keys from 127.0.0.1: held back on both transports, even with the right key.
        held = refusal(target, body, metadata=(("authorization", f"Bearer {INGEST}"),))
        assert held.code() is grpc.StatusCode.UNAVAILABLE and "too many wrong keys" in held.details()
        from_details, from_trailer = retry_delays(held)
        assert 1 <= from_details == from_trailer <= 60
        assert (
            server.post_spans(make_request(make_turn("s-t", "u-t")[1]), {"X-API-Key": INGEST}).status_code
            == 429
        )


def test_metrics_and_logs_exports_are_told_to_turn_off(tmp_path: Path):
    # opentelemetry-instrument sends all three signals to the same endpoint by default.
    with run_server(tmp_path / "signals.db", grpc=True) as server:
        assert server.grpc_target is not None
        with grpc.insecure_channel(server.grpc_target) as channel:
            metrics = metrics_service_pb2_grpc.MetricsServiceStub(channel)
            logs = logs_service_pb2_grpc.LogsServiceStub(channel)
            for export, request, variable in (
                (metrics.Export, metrics_service_pb2.ExportMetricsServiceRequest(), "OTEL_METRICS_EXPORTER"),
                (logs.Export, logs_service_pb2.ExportLogsServiceRequest(), "OTEL_LOGS_EXPORTER"),
            ):
                with pytest.raises(grpc.RpcError) as raised:
                    export(request, timeout=30)
                assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
                assert f"{variable}=none" in raised.value.details()


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:127.0.0.1:50234", "127.0.0.1"),
        ("ipv6:[::1]:50234", "::1"),
        ("ipv6:%5B::1%5D:50234", "::1"),
        ("ipv6:%5Bfe80::1%25eth0%5D:443", "fe80::1%eth0"),
        ("unix:/run/spanloom.sock", "unix:/run/spanloom.sock"),
    ],
)
def test_peer_host_names_an_address_as_http_does(peer: str, host: str):
    assert peer_host(peer) == host


def test_a_connection_that_never_finishes_its_handshake_is_closed(tmp_path: Path):
    with run_server(tmp_path / "slow.db") as server:
        grpc_server = GrpcIngestServer(
            server.app.state.ingest, None, 1, "127.0.0.1", 0, handshake_timeout_seconds=0.5
        )
        grpc_server.start()
        try:
            with socket.create_connection(("127.0.0.1", grpc_server.port), timeout=10) as slow:
                slow.sendall(b"PRI * HTTP/2.0\r\n")  # half of HTTP/2's preface, then nothing
                started = time.monotonic()
                while slow.recv(4096):  # the server's SETTINGS, then the close
                    pass
                assert time.monotonic() - started < 5
        finally:
            grpc_server.stop()
