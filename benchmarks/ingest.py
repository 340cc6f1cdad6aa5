"""Ingest benchmark: 100,000 realistic LLM spans into `spanloom serve`, against a plain-SQLite floor.

Two projects ("shop" and "support") use the same session and user ids, as two apps (or staging
and production) do: every other pass over the conversations goes to the other project, so each
id is a session (and a user) in both, which the store keeps apart.

Run: ``python benchmarks/ingest.py [--spans 100000] [--evaluators] [--protocol http|grpc]
[--rounds N]``. With ``--evaluators`` the server runs latency, contains_pii and refusal on every LLM
span of the project as it arrives (off the ingest path): compare the sustained rate with and
without. Prints a markdown table: sustained spans/s (counted once the last batch is answered, i.e.
committed and queryable), the server's peak RSS, the database size, median latencies of API calls
over 20 requests (each detail call for a different id, so no cache serves them), and the floor:
decoding the same payloads and inserting plain rows into SQLite without rollups.

``--protocol grpc`` sends the same payloads to TraceService/Export on the server's OTLP/gRPC port
(two senders, a channel each) and prints the same table, plus OTLP/HTTP measured in the same run:
every round starts a fresh server per protocol, the two in alternating order, and the rates are
given as min / median over the rounds (``--rounds``, 3 by default with gRPC), with the gRPC/HTTP
ratio of each round. The reads are measured on the last round's server of the chosen protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from google.rpc import error_details_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanloom.demo import build_conversations, llm_span_attributes
from spanloom.server.ingest.attributes import key_values
from spanloom.server.ingest.decode import decode_protobuf

BATCH = 512  # what the SDK's BatchSpanProcessor sends per request
PROJECTS = ("shop", "support")
HEADERS = {"Content-Type": "application/x-protobuf"}
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRY_INFO_TRAILER = "google.rpc.retryinfo-bin"


def _kv(attributes: dict) -> list[KeyValue]:
    out = []
    for key, value in attributes.items():
        if isinstance(value, int):
            out.append(KeyValue(key=key, value=AnyValue(int_value=value)))
        else:
            out.append(KeyValue(key=key, value=AnyValue(string_value=str(value))))
    return out


def build_payloads(total_spans: int, sessions: int, users: int) -> tuple[list[bytes], list[str], list[str]]:
    """Serialized OTLP requests of BATCH spans each, in the demo's shape (agent, tool, LLM spans),
    and the session and user ids (each in both projects)."""
    rng = random.Random(1)
    conversations = build_conversations(sessions=sessions, users=users, seed=1, answer_sentences=(20, 40))
    spans: list[tuple[str, Span]] = []
    now = time.time_ns() - 86_400 * 10**9
    index = 0
    while len(spans) < total_spans:
        for conversation in conversations:
            if len(spans) >= total_spans:
                break
            turn = conversation.turns[index % len(conversation.turns)]
            trace_id, root_id, tool_id, llm_id = (
                rng.randbytes(16),
                rng.randbytes(8),
                rng.randbytes(8),
                rng.randbytes(8),
            )
            start = now + index * 60 * 10**9
            ids = {"session.id": conversation.session_id, "user.id": conversation.user_id}
            agent = {
                "openinference.span.kind": "AGENT",
                "input.value": turn.question,
                "output.value": turn.answer,
                **ids,
            }
            tool = {
                "openinference.span.kind": "TOOL",
                "tool.name": "search_docs",
                "input.value": turn.question,
                "output.value": turn.answer,
                **ids,
            }
            history = conversation.turns[
                max(0, index % len(conversation.turns) - 1) : index % len(conversation.turns)
            ]
            llm = {**llm_span_attributes(turn, history), **ids}
            latency = turn.latency_ms * 10**6
            for span_id, parent, name, attributes, offset, duration in (
                (root_id, b"", "assistant", agent, 0, latency + 50_000_000),
                (tool_id, root_id, "search_docs", tool, 1_000_000, 40_000_000),
                (llm_id, root_id, "ChatCompletion", llm, 45_000_000, latency),
            ):
                spans.append(
                    (
                        PROJECTS[index % len(PROJECTS)],
                        Span(
                            trace_id=trace_id,
                            span_id=span_id,
                            parent_span_id=parent,
                            name=name,
                            start_time_unix_nano=start + offset,
                            end_time_unix_nano=start + offset + duration,
                            attributes=_kv(attributes),
                        ),
                    )
                )
        index += 1
    del spans[total_spans:]  # the last trace may be cut short: spans arrive in any shape
    payloads = []
    for first in range(0, len(spans), BATCH):
        request = ExportTraceServiceRequest()
        for project in PROJECTS:
            mine = [span for owner, span in spans[first : first + BATCH] if owner == project]
            if mine:
                resource_spans = request.resource_spans.add()
                resource_spans.resource.attributes.extend(
                    _kv({"project.name": project, "service.name": "bench"})
                )
                resource_spans.scope_spans.add().spans.extend(mine)
        payloads.append(request.SerializeToString())
    return payloads, [c.session_id for c in conversations], sorted({c.user_id for c in conversations})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def db_size_mib(db: Path) -> float:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 2**20


def send_all(url: str, payloads: list[bytes], senders: int = 2) -> None:
    def run(mine: list[bytes]) -> None:
        with httpx.Client(timeout=120) as client:
            for body in mine:
                while True:
                    response = client.post(url, content=body, headers=HEADERS)
                    if response.status_code == 200:
                        break
                    if response.status_code != 503:
                        raise RuntimeError(f"{response.status_code}: {response.text}")
                    time.sleep(float(response.headers.get("Retry-After", "1")))

    threads = [threading.Thread(target=run, args=(payloads[i::senders],)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def send_all_grpc(target: str, payloads: list[bytes], senders: int = 2) -> None:
    """The same payloads over OTLP/gRPC, as bytes (no client-side encoding, as the HTTP senders);
    UNAVAILABLE is retried after its RetryInfo, as the OpenTelemetry exporters do."""

    def run(mine: list[bytes]) -> None:
        with grpc.insecure_channel(target) as channel:
            export = channel.unary_unary(EXPORT)
            for body in mine:
                while True:
                    try:
                        export(body, timeout=120)
                        break
                    except grpc.RpcError as error:
                        if error.code() is not grpc.StatusCode.UNAVAILABLE:
                            raise RuntimeError(f"{error.code()}: {error.details()}") from None
                        trailer = dict(error.trailing_metadata() or ()).get(RETRY_INFO_TRAILER)
                        delay = (
                            error_details_pb2.RetryInfo.FromString(trailer).retry_delay if trailer else None
                        )
                        time.sleep(delay.seconds + delay.nanos / 1e9 if delay else 1.0)

    threads = [threading.Thread(target=run, args=(payloads[i::senders],)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def median_ms(client: httpx.Client, requests: list[tuple[str, dict[str, str]]]) -> float:
    """The median time of these GETs (path, params), one each."""
    times = []
    for path, params in requests:
        start = time.perf_counter()
        response = client.get(path, params=params)
        assert response.status_code == 200, (path, params, response.status_code, response.text[:200])
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def distinct(ids: list[str], path: str, n: int = 20) -> list[tuple[str, dict[str, str]]]:
    """`n` detail requests, each for another id and a project in turn."""
    step = max(1, len(ids) // n)
    picked = ids[::step][:n]
    return [
        (f"{path}/{identifier}", {"project": PROJECTS[i % len(PROJECTS)]})
        for i, identifier in enumerate(picked)
    ]


def floor_spans_per_second(payloads: list[bytes], directory: Path) -> float:
    """Decode the same payloads and insert plain rows, no rollups: the best SQLite can do here."""
    connection = sqlite3.connect(directory / "floor.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(
        "CREATE TABLE spans (trace_id TEXT, span_id TEXT, parent TEXT, name TEXT, start INTEGER,"
        " end INTEGER, attributes TEXT, PRIMARY KEY (trace_id, span_id))"
    )
    start = time.perf_counter()
    count = 0
    for body in payloads:
        request = decode_protobuf(body)
        rows = [
            (
                s.trace_id.hex(),
                s.span_id.hex(),
                s.parent_span_id.hex(),
                s.name,
                s.start_time_unix_nano,
                s.end_time_unix_nano,
                json.dumps(key_values(s.attributes)),
            )
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        ]
        connection.execute("BEGIN")
        connection.executemany("INSERT OR IGNORE INTO spans VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        connection.execute("COMMIT")
        count += len(rows)
    elapsed = time.perf_counter() - start
    connection.close()
    return count / elapsed


def write_evaluators(path: Path) -> Path:
    evaluators = [
        {"name": "fast", "kind": "latency", "project": "bench", "options": {"threshold_ms": 2000}},
        {"name": "no_pii", "kind": "contains_pii", "project": "bench"},
        {"name": "answers", "kind": "refusal", "project": "bench"},
    ]
    path.write_text(json.dumps({"evaluators": evaluators}))
    return path


def wait_for_results(client: httpx.Client, expected: int, timeout: float = 120) -> int:
    """Results the server evaluators wrote, once `expected` are there (or none came for 5 s)."""
    deadline = time.monotonic() + timeout
    count, grew_at = -1, time.monotonic()
    while time.monotonic() < deadline:
        rows = client.get("/api/evaluations/summary", params={"group_by": "project"}).json()["items"]
        now = sum(row["count"] for row in rows)
        if now >= expected:
            return now
        if now != count:
            count, grew_at = now, time.monotonic()
        elif time.monotonic() - grew_at > 5:
            return count
        time.sleep(0.2)
    return count


@dataclass
class Round:
    """One fresh server fed every payload over one protocol."""

    protocol: str
    rate: float  # spans/s
    cpu_per_span_us: float
    rss_mib: float = 0.0
    size_mib: float = 0.0
    reads_ms: dict[str, float] = field(default_factory=dict)
    judged: int = 0
    judged_at: float = 0.0


def start_server(directory: Path, environment: dict[str, str]) -> tuple[subprocess.Popen, str, str, Path]:
    """`spanloom serve` over a fresh database: (process, HTTP base URL, gRPC target, database)."""
    db = directory / f"bench-{time.monotonic_ns()}.db"
    port, grpc_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "spanloom.cli", "serve", "--port", str(port), "--db", str(db)]
    server = subprocess.Popen(
        [*command, "--grpc-port", str(grpc_port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        env=environment,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/api/projects").status_code == 200:
                return server, base, f"127.0.0.1:{grpc_port}", db
        except httpx.TransportError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)


def run_round(
    protocol: str,
    payloads: list[bytes],
    args: argparse.Namespace,
    ids: tuple[list[str], list[str]],
    directory: Path,
    environment: dict[str, str],
    measure_reads: bool,
) -> Round:
    session_ids, user_ids = ids
    server, base, target, db = start_server(directory, environment)
    try:
        start, cpu_before = time.perf_counter(), cpu_seconds(server.pid)
        if protocol == "grpc":
            send_all_grpc(target, payloads)
        else:
            send_all(f"{base}/v1/traces", payloads)
        elapsed = time.perf_counter() - start
        # Less sensitive than the rate to other load on the machine: what ingest cost the server.
        result = Round(
            protocol, args.spans / elapsed, (cpu_seconds(server.pid) - cpu_before) / args.spans * 1e6
        )
        with httpx.Client(base_url=base, timeout=30) as client:
            projects = client.get("/api/projects").json()["items"]
            stored = sum(project["span_count"] for project in projects)
            assert stored == args.spans, stored
            assert [p["session_count"] for p in projects] == [len(session_ids)] * len(PROJECTS), projects
            if not measure_reads:
                return result
            sorts = ("start_time", "cost", "errors", "turns", "latency", "tokens", "last_activity")
            result.reads_ms = {
                "sessions": median_ms(
                    client, [("/api/sessions", {"sort": sorts[i % len(sorts)]}) for i in range(20)]
                ),
                "project": median_ms(
                    client,
                    [
                        ("/api/sessions", {"project": PROJECTS[i % 2], "sort": sorts[i % len(sorts)]})
                        for i in range(20)
                    ],
                ),
                "session": median_ms(client, distinct(session_ids, "/api/sessions")),
                "users": median_ms(
                    client, [("/api/users", {"sort": "cost" if i % 2 else "last_seen"}) for i in range(20)]
                ),
                "user": median_ms(client, distinct(user_ids, "/api/users")),
            }
            result.judged = wait_for_results(client, args.spans // 3 * 3) if args.evaluators else 0
            result.judged_at = time.perf_counter() - start
        result.rss_mib = peak_rss_mib(server.pid)
        result.size_mib = db_size_mib(db)
        return result
    finally:
        server.terminate()
        server.wait(timeout=60)


def spread(values: list[float], unit: str, digits: int = 0) -> str:
    """One value as it is; several as min / median."""
    if len(values) == 1:
        return f"{values[0]:,.{digits}f} {unit}"
    return f"{min(values):,.{digits}f} / {statistics.median(values):,.{digits}f} {unit} (min / median)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument(
        "--evaluators", action="store_true", help="configure latency + contains_pii + refusal for the project"
    )
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http", help="how the spans are sent")
    parser.add_argument("--rounds", type=int, default=None, help="ingest rounds (default 1; 3 with grpc)")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.protocol == "grpc" else 1)
    payloads, session_ids, user_ids = build_payloads(args.spans, args.sessions, args.users)
    average = sum(map(len, payloads)) / args.spans
    # With gRPC, OTLP/HTTP runs in the same rounds, the two in alternating order, so that whatever
    # else the machine does weighs on both alike.
    protocols = ("grpc", "http") if args.protocol == "grpc" else ("http",)
    results: dict[str, list[Round]] = {protocol: [] for protocol in protocols}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        environment = dict(os.environ)
        if args.evaluators:
            environment["SPANLOOM_EVALUATORS_FILE"] = str(write_evaluators(directory / "evaluators.json"))
        for number in range(rounds):
            for protocol in protocols if number % 2 == 0 else protocols[::-1]:
                last = number == rounds - 1 and protocol == args.protocol
                results[protocol].append(
                    run_round(protocol, payloads, args, (session_ids, user_ids), directory, environment, last)
                )
        floor = floor_spans_per_second(payloads, directory)
    mine = results[args.protocol]
    measured = mine[-1]
    rates = [result.rate for result in mine]
    reads = measured.reads_ms
    transport = "OTLP/gRPC" if args.protocol == "grpc" else "OTLP/HTTP"
    print(
        f"{args.spans} spans ({average / 1024:.1f} KiB each on the wire), {args.sessions} sessions, "
        f"{args.users} users, 2 senders over {transport}, {rounds} round(s), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| sustained ingest | {spread(rates, 'spans/s')} | >= 10,000 |")
    print(f"| floor (decode + plain SQLite rows) | {floor:,.0f} spans/s | |")
    print(f"| floor / spanloom | {floor / statistics.median(rates):.2f}x | <= 2x |")
    print(f"| server CPU per span (all threads) | {spread([r.cpu_per_span_us for r in mine], 'µs')} | |")
    print(f"| server peak RSS | {measured.rss_mib:.0f} MiB | < 250 MiB |")
    print(f"| database size | {measured.size_mib:.0f} MiB | |")
    print(
        f"| GET /api/sessions (all projects, 7 sorts), median of 20 | {reads['sessions']:.1f} ms | < 20 ms |"
    )
    print(
        f"| GET /api/sessions?project=P (first page, 7 sorts), median of 20 | {reads['project']:.1f} ms "
        "| < 20 ms |"
    )
    print(f"| GET /api/sessions/{{id}}?project=P, 20 distinct ids | {reads['session']:.1f} ms | < 20 ms |")
    print(f"| GET /api/users (first page), median of 20 | {reads['users']:.1f} ms | < 20 ms |")
    print(f"| GET /api/users/{{id}}?project=P, 20 distinct ids | {reads['user']:.1f} ms | < 20 ms |")
    if args.evaluators:
        print(
            f"| server evaluator results (3 per LLM span) | {measured.judged:,} after "
            f"{measured.judged_at:.1f} s | |"
        )
    if args.protocol == "grpc":
        http = results["http"]
        ratios = [g.rate / h.rate for g, h in zip(mine, http, strict=True)]
        print(f"| OTLP/HTTP ingest, the same rounds | {spread([r.rate for r in http], 'spans/s')} | |")
        print(f"| OTLP/HTTP server CPU per span | {spread([r.cpu_per_span_us for r in http], 'µs')} | |")
        print(f"| gRPC / HTTP ingest rate, per round | {spread(ratios, 'x', 2)} | >= 1x |")
        # Less sensitive to the machine's other load than the rates: what each span cost the server.
        cheaper = [h.cpu_per_span_us / g.cpu_per_span_us for g, h in zip(mine, http, strict=True)]
        print(f"| HTTP / gRPC server CPU per span, per round | {spread(cheaper, 'x', 2)} | >= 1x |")


if __name__ == "__main__":
    main()
