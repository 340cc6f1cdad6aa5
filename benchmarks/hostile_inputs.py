"""Hostile inputs against `spanloom serve`: what other requests wait while the server judges them,
and what the SDK's redaction costs on them.

Run: ``python benchmarks/hostile_inputs.py [--rounds 5]``. Prints two markdown tables:

1. The latency of ``GET /api/sessions`` on a real server (a process of its own) with the
   evaluators contains_pii, refusal and a user regex ``(a|aa)+$`` configured: in each round,
   first while idle, then while the server judges ten hostile LLM spans (eight 65,000-letter
   outputs, two outputs joined from ten 60,000-character parts), interleaved round by round.
2. ``TraceConfig(redact_patterns=["email"])`` on a realistic 64 KB answer and on 64 KB of letters,
   with the e-mail pattern before this change (unbounded parts) against the current one.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanloom.sdk.mask import BUILTIN_PATTERNS, TraceConfig
from spanloom.server.evaluators.config import EvaluatorConfig, save_configs

OLD_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def span(name: str, attributes: dict[str, str]) -> Span:
    now = time.time_ns()
    values = [KeyValue(key=key, value=AnyValue(string_value=value)) for key, value in attributes.items()]
    return Span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        name=name,
        start_time_unix_nano=now,
        end_time_unix_nano=now + 10**6,
        attributes=values,
    )


def hostile_batch() -> bytes:
    llm = {"openinference.span.kind": "LLM"}
    spans = [span("letters", {**llm, "output.value": "a" * 65_000 + "!"}) for _ in range(8)]
    parts = {
        f"llm.output_messages.0.message.contents.{n}.message_content.text": "b" * 60_000 for n in range(10)
    }
    spans += [span("parts", {**llm, **parts}) for _ in range(2)]
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="project.name", value=AnyValue(string_value="bench"))
    )
    resource_spans.scope_spans.add().spans.extend(spans)
    return request.SerializeToString()


def judged(client: httpx.Client) -> int:
    rows = client.get("/api/evaluations/summary", params={"group_by": "project"}).json()["items"]
    return sum(row["count"] for row in rows)


def timed_get(client: httpx.Client) -> float:
    started = time.perf_counter()
    client.get("/api/sessions").raise_for_status()
    return time.perf_counter() - started


def server_latencies(rounds: int) -> tuple[list[float], list[float], float]:
    directory = Path(tempfile.mkdtemp(prefix="spanloom-hostile-"))
    evaluators = directory / "evaluators.json"
    save_configs(
        evaluators,
        [
            EvaluatorConfig(name="pii", kind="contains_pii"),
            EvaluatorConfig(name="declines", kind="refusal"),
            EvaluatorConfig(name="shape", kind="regex", options={"pattern": "(a|aa)+$"}),
        ],
    )
    port = free_port()
    environment = {**os.environ, "SPANLOOM_EVALUATORS_FILE": str(evaluators)}
    command = [
        sys.executable,
        "-m",
        "spanloom.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        str(directory / "b.db"),
        "--grpc-port",
        "0",
    ]
    process = subprocess.Popen(
        [*command, "--log-level", "error"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    idle: list[float] = []
    judging: list[float] = []
    judging_seconds = 0.0
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/api/projects")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            for _ in range(rounds):
                body = hostile_batch()  # new span ids: results on the same span would replace earlier ones
                idle.extend(timed_get(client) for _ in range(30))
                before = judged(client)
                started = time.perf_counter()
                client.post(
                    "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
                ).raise_for_status()
                deadline = time.monotonic() + 120
                while judged(client) < before + 22:  # pii 10, declines 10, shape 2 (8 time out)
                    if time.monotonic() > deadline:
                        raise RuntimeError("the server did not judge the batch within 120 s")
                    judging.append(timed_get(client))
                judging_seconds += time.perf_counter() - started
    finally:
        process.kill()
        process.wait()
    return idle, judging, judging_seconds / rounds


def redaction_seconds(pattern: str, text: str, repeat: int) -> float:
    config = TraceConfig(redact_patterns=[pattern])
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        config.redact(text)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    idle, judging, seconds = server_latencies(rounds)
    print(f"\n## GET /api/sessions while ten hostile spans are judged ({rounds} interleaved rounds)\n")
    print("| | requests | min | median | p95 | max |")
    print("|---|---|---|---|---|---|")
    for name, values in (("idle", idle), ("while judging", judging)):
        ordered = sorted(values)
        p95 = ordered[int(len(ordered) * 0.95) - 1]
        cells = " | ".join(
            f"{v * 1000:.1f} ms" for v in (ordered[0], statistics.median(ordered), p95, ordered[-1])
        )
        print(f"| {name} | {len(values)} | {cells} |")
    added = statistics.median(judging) - statistics.median(idle)
    print(f"\nadded median latency while judging: {added * 1000:+.1f} ms (bound: 100 ms); ")
    print(
        f"judging one batch took {seconds:.2f} s; ratio judging/idle median: "
        f"{statistics.median(judging) / statistics.median(idle):.2f}"
    )

    prose = (
        "Thanks for reaching out! I looked at order A-1001 and it shipped yesterday; write to "
        "support@example.com or call +1 415 555 0132 if it has not arrived by Friday. "
    )
    realistic = (prose * (65_536 // len(prose) + 1))[:65_536]
    letters = "a" * 65_536
    print(
        "\n## TraceConfig(redact_patterns=['email']).redact on 64 KB"
        " (best of 3; the old pattern once on letters)\n"
    )
    print("| text | before (unbounded parts) | now | ratio |")
    print("|---|---|---|---|")
    for name, text, repeat in (("realistic answer", realistic, 3), ("64 KB of letters", letters, 1)):
        before = redaction_seconds(OLD_EMAIL, text, repeat)
        now = redaction_seconds(BUILTIN_PATTERNS["email"], text, 3)
        print(f"| {name} | {before * 1000:.1f} ms | {now * 1000:.1f} ms | {before / now:.1f}x |")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    assert re.compile(BUILTIN_PATTERNS["email"]).search(realistic)


if __name__ == "__main__":
    main()
