"""Small bodies that decode into millions of objects, sent four at a time to `spanloom serve` in a
process of its own, whose peak memory is read from /proc: it stays under 300 MB (and its
decoding process, where the values are counted and bodies decoded, under 160 MB), each is refused
with a 413 that says why, and the server goes on storing ordinary batches."""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import grpc
import httpx
from _server_kit import PROTOBUF, free_port, length_delimited, make_request, make_turn, server_process

MAX_PEAK_RSS_BYTES = 300 * 1024 * 1024
# A decoding process holds the body it decodes and its tree (one at a time), beside ~50 MB of
# modules and prices: its peak measured 89 MB on Python 3.11 and 132 MB on 3.13.
MAX_CHILD_PEAK_RSS_BYTES = 160 * 1024 * 1024
COPIES = 4


def _request_with_span(span: bytes) -> bytes:
    # ExportTraceServiceRequest.resource_spans(1) > ResourceSpans.scope_spans(2) > ScopeSpans.spans(2)
    return length_delimited(1, length_delimited(2, length_delimited(2, span)))


def _span_with(fields: bytes) -> bytes:
    ids = length_delimited(1, bytes(range(1, 17))) + length_delimited(2, bytes(range(1, 9)))
    return ids + length_delimited(5, b"amplified") + fields


def protobuf_payloads() -> dict[str, bytes]:
    # One attribute holding 3.9M empty arrays: AnyValue.array_value(5) > ArrayValue.values(1).
    empty_array = length_delimited(1, length_delimited(5, b""))
    nested = length_delimited(1, b"big") + length_delimited(2, length_delimited(5, empty_array * 3_900_000))
    return {
        "4M empty nested arrays": _request_with_span(_span_with(length_delimited(9, nested))),
        # Span.attributes(9) of four million empty KeyValues.
        "4M empty attributes": _request_with_span(_span_with(length_delimited(9, b"") * 4_000_000)),
        # ScopeSpans.spans(2) of four million empty spans (about 170 bytes each once decoded).
        "4M empty spans": length_delimited(1, length_delimited(2, length_delimited(2, b"") * 4_000_000)),
    }


def json_payloads() -> dict[str, bytes]:
    empty_spans = b'{"resourceSpans":[{"scopeSpans":[{"spans":[' + b",".join([b"{}"] * 4_000_000) + b"]}]}]}"
    values = b",".join([b"{}"] * 4_000_000)
    span = (
        b'{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x",'
        b'"attributes":[{"key":"big","value":{"arrayValue":{"values":[' + values + b"]}}}]}"
    )
    empty_values = b'{"resourceSpans":[{"scopeSpans":[{"spans":[' + span + b"]}]}]}"
    # strings hide separators, so this one is counted string by string
    tiny_strings = b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":[' + b",".join([b'""'] * 4_000_000)
    tiny_strings += b"]}]}]}]}"
    return {
        "JSON 4M empty spans": empty_spans,
        "JSON 4M empty values": empty_values,
        "JSON 4M empty strings": tiny_strings,
    }


# serve's default on 2 CPUs, whatever this machine has: one decoding process beside the server.
DECODING = ("--decode-processes", "1")


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def check_memory(name: str, server: int) -> None:
    """The server's peak RSS under 300 MB, and its children's (the decoding process, which counts
    the values and decodes, and multiprocessing's resource tracker) under 160 MB each."""
    peak = peak_rss(server)
    assert peak < MAX_PEAK_RSS_BYTES, f"{name}: peak RSS {peak / 2**20:.0f} MB"
    children = [int(child) for child in Path(f"/proc/{server}/task/{server}/children").read_text().split()]
    assert children, "the server has no decoding process: this measures only half of it"
    for child in children:
        peak = peak_rss(child)
        assert peak < MAX_CHILD_PEAK_RSS_BYTES, f"{name}: a decoding process's peak RSS {peak / 2**20:.0f} MB"


def send_together(url: str, body: bytes, headers: dict[str, str]) -> list[httpx.Response]:
    responses: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(timeout=120) as client:
            responses.append(client.post(url, content=body, headers=headers))

    senders = [threading.Thread(target=send) for _ in range(COPIES)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    return responses


def test_amplifying_bodies_keep_the_server_under_300_mb(tmp_path: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/traces"
    cases = [(name, body, PROTOBUF) for name, body in protobuf_payloads().items()]
    cases += [(name, body, {"Content-Type": "application/json"}) for name, body in json_payloads().items()]
    with server_process(tmp_path / "amplified.db", port, options=DECODING) as process:
        for name, body, headers in cases:
            compressed = gzip.compress(body, compresslevel=6)
            assert len(compressed) < 64 * 1024 and 7_500_000 < len(body) < 16 * 1024 * 1024
            responses = send_together(url, compressed, {**headers, "Content-Encoding": "gzip"})
            check_memory(name, process.pid)
            for response in responses:
                assert response.status_code == 413, (name, response.status_code, response.text[:200])
                error = response.json()["error"]
                assert error["code"] in ("too_many_values", "too_many_spans"), (name, error)
                assert "SPANLOOM_MAX_" in error["message"]
        # Still storing ordinary batches.
        _, spans = make_turn("s-after-amplification", "u")
        response = httpx.post(url, content=make_request(spans).SerializeToString(), headers=PROTOBUF)
        assert response.status_code == 200
        sessions = httpx.get(f"http://127.0.0.1:{port}/api/sessions").json()["items"]
        assert [item["session_id"] for item in sessions] == ["s-after-amplification"]


def test_amplifying_messages_over_grpc_keep_the_server_under_300_mb(tmp_path: Path):
    # gRPC hands the message over as bytes, so the same budget counts it before decoding.
    port, grpc_port = free_port(), free_port()
    failures: list[grpc.RpcError] = []

    def send(body: bytes) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}", compression=grpc.Compression.Gzip) as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            try:
                export(body, timeout=120)
            except grpc.RpcError as error:
                failures.append(error)

    with server_process(tmp_path / "amplified.db", port, grpc_port, DECODING) as process:
        for name, body in protobuf_payloads().items():
            failures.clear()
            senders = [threading.Thread(target=send, args=(body,)) for _ in range(COPIES)]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            check_memory(name, process.pid)
            assert len(failures) == COPIES, name
            for error in failures:
                assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (name, error.code(), error.details())
                assert "too_many_" in error.details() and "SPANLOOM_MAX_" in error.details()


def test_the_server_returns_big_buffers_to_the_system_on_glibc():
    # What keeps the peaks above well under the cap: without a fixed mmap threshold, four 16 MB
    # JSON bodies at once stayed resident in the threads' heap arenas (a peak of 300-320 MB here).
    from spanloom.server.memory import return_big_buffers_to_the_system

    assert return_big_buffers_to_the_system() is True
