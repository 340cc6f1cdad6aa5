"""Ingest benchmark: realistic LLM spans into `spanloom serve` on one or more stores, in the same run,
against a plain-SQLite floor.

Two projects ("shop" and "support") use the same session and user ids, as two apps (or staging
and production) do: every other pass over the conversations goes to the other project, so each
id is a session (and a user) in both, which the store keeps apart.

Run: ``python benchmarks/ingest.py [--spans 100000] [--store URL ...] [--migrate] [--evaluators]``,
e.g. ``--store sqlite:////tmp/b/spans.db --store chdb:///tmp/b/ch --spans 1000000 --migrate``
(each URL must name a new, empty store; default: a temporary SQLite file). Texts are sentences
drawn at random from the docstrings of Python's standard library (tens of thousands of distinct
English sentences), so every answer differs and compresses as real text does; sessions have
about 30 turns, the same ids in two projects. For each store: the sustained rate (until the last
batch is answered, i.e. stored and queryable), peak RSS, bytes on disk per span next to the OTLP
bytes received per span, median latencies of 20 reads after warm-up, and the first page of turns
of one session of 20,000 traces. ``--migrate`` then copies the first (SQLite) store into a new
chDB store with ``spanloom migrate`` and reports its time and count check. With ``--evaluators`` the
server runs latency, contains_pii and refusal on every LLM span of the project as it arrives (off
the ingest path): compare the sustained rate with and without. Prints a markdown table: sustained
spans/s (counted once the last batch is answered, i.e. committed and queryable), the server's
peak RSS, the database size, median latencies of API calls over 20 requests (each detail call
for a different id, so no cache serves them), and the floor: decoding the same payloads and
inserting plain rows into SQLite without rollups.

``--protocol grpc [--rounds N]`` (on a temporary SQLite store, not with ``--store``) sends the
same payloads to TraceService/Export on the server's OTLP/gRPC port (two senders, a channel each)
and prints the same table, plus OTLP/HTTP measured in the same run: every round starts a fresh
server per protocol, the two in alternating order, and the rates are given as min / median over
the rounds (``--rounds``, 3 by default with gRPC), with the gRPC/HTTP ratio of each round. The
reads are measured on the last round's server of the chosen protocol.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import reader_load  # benchmarks/, beside this script
from google.rpc import error_details_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanloom.demo import build_conversations, llm_span_attributes
from spanloom.server.ingest.attributes import key_values
from spanloom.server.ingest.decode import decode_protobuf
from spanloom.server.store.url import sqlite_path

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


def text_corpus() -> list[str]:
    """Distinct English sentences from the docstrings of Python's standard library: real prose
    of every length, the same on every machine with this Python."""
    library = Path(ast.__file__).parent
    sentences: set[str] = set()
    for path in sorted(library.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                for sentence in re.split(r"(?<=[.!?])\s+", " ".join((doc or "").split())):
                    if 30 <= len(sentence) <= 240 and sentence[0].isupper():
                        sentences.add(sentence)
    return sorted(sentences)


def build_payloads(
    total_spans: int, sessions: int, users: int
) -> tuple[list[bytes], list[str], list[str], list[str]]:
    """Serialized OTLP requests of BATCH spans each, in the demo's shape (agent, tool, LLM spans),
    the session and user ids (each in both projects), and the trace ids of one session's turns."""
    rng = random.Random(1)
    corpus = text_corpus()
    conversations = build_conversations(sessions=sessions, users=users, seed=1, answer_sentences=(1, 1))
    spans: list[tuple[str, Span]] = []
    now = time.time_ns() - 86_400 * 10**9
    index = 0
    while len(spans) < total_spans:
        for conversation in conversations:
            if len(spans) >= total_spans:
                break
            template = conversation.turns[index % len(conversation.turns)]
            # Every turn its own texts: a question, a tool result and an answer of 20-40 sentences.
            turn = dataclasses.replace(
                template,
                question=rng.choice(corpus).rstrip(".") + "?",
                answer=" ".join(rng.sample(corpus, rng.randint(20, 40))),
            )
            tool_result = " ".join(rng.sample(corpus, rng.randint(3, 8)))
            spans.extend(
                turn_spans(
                    rng,
                    PROJECTS[index % len(PROJECTS)],
                    conversation,
                    turn,
                    tool_result,
                    now + index * 60 * 10**9,
                )
            )
        index += 1
    del spans[total_spans:]  # the last trace may be cut short: spans arrive in any shape
    return (
        pack(spans),
        [c.session_id for c in conversations],
        sorted({c.user_id for c in conversations}),
        [],
    )


def turn_spans(
    rng: random.Random, project: str, conversation: Any, turn: Any, tool_result: str, start: int
) -> list[tuple[str, Span]]:
    """The agent, tool and LLM spans of one turn."""
    trace_id, root_id, tool_id, llm_id = (
        rng.randbytes(16),
        rng.randbytes(8),
        rng.randbytes(8),
        rng.randbytes(8),
    )
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
        "output.value": tool_result,
        **ids,
    }
    llm = {**llm_span_attributes(turn, []), **ids}
    latency = turn.latency_ms * 10**6
    return [
        (
            project,
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
        for span_id, parent, name, attributes, offset, duration in (
            (root_id, b"", "assistant", agent, 0, latency + 50_000_000),
            (tool_id, root_id, "search_docs", tool, 1_000_000, 40_000_000),
            (llm_id, root_id, "ChatCompletion", llm, 45_000_000, latency),
        )
    ]


def pack(spans: list[tuple[str, Span]]) -> list[bytes]:
    """Requests of BATCH spans, each project's under its own resource."""
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
    return payloads


def huge_session_payloads(traces: int) -> list[bytes]:
    """One session of `traces` turns (project "shop", session "huge-session"), short texts."""
    rng = random.Random(2)
    corpus = text_corpus()
    conversation = build_conversations(sessions=1, users=1, seed=2, answer_sentences=(1, 1))[0]
    conversation.session_id, conversation.user_id = "huge-session", "huge-user"
    start = time.time_ns() - 3 * 86_400 * 10**9
    spans: list[tuple[str, Span]] = []
    for index in range(traces):
        turn = dataclasses.replace(
            conversation.turns[0], question=rng.choice(corpus), answer=" ".join(rng.sample(corpus, 3))
        )
        spans.extend(turn_spans(rng, "shop", conversation, turn, rng.choice(corpus), start + index * 10**9))
    return pack(spans)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _status_mib(pid: int, field: str) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # ended since it was listed
        return 0.0
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the server's decoding processes and their resource tracker)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(descendant for child in children for descendant in _process_tree(int(child)))]


def peak_rss_mib(pid: int) -> float:
    """The peak RSS of the server's process plus each of its children's: the memory it takes,
    decoding processes included (shared pages counted in each, so an upper bound)."""
    return sum(_status_mib(process, "VmHWM") for process in _process_tree(pid))


def current_rss_mib(pid: int) -> float:
    return sum(_status_mib(process, "VmRSS") for process in _process_tree(pid))


def concurrent_page_loads(base: str, path: str, params: dict[str, str], loads: int = 4) -> list[int]:
    """Load one page from `loads` clients at once; the size of each answer, in bytes."""
    sizes: list[int] = []

    def load() -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            response = client.get(path, params=params, headers={"Accept": "text/html"})
            response.raise_for_status()
            sizes.append(len(response.content))

    threads = [threading.Thread(target=load) for _ in range(loads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sizes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process and its children (decoding processes) have used so far."""
    total = 0.0
    for process in _process_tree(pid):
        try:
            total += stat_cpu_seconds(Path(f"/proc/{process}/stat"))
        except OSError:  # ended since it was listed
            pass
    return total


def stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU time in a /proc stat file (a process's, or one thread's under task/)."""
    fields = stat.read_text().rpartition(")")[2].split()
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


def unindexed_traces(base: str) -> int:
    """The traces SQLite's text indexer has still to index (0 on a store without one), from /metrics."""
    found = re.search(r"^spanloom_store_unindexed_traces (\S+)$", httpx.get(f"{base}/metrics").text, re.M)
    return int(float(found[1])) if found else 0


def wait_for_text_index(base: str, timeout: float = 1800) -> float:
    """Seconds until the text index's backlog is 0."""
    start = time.perf_counter()
    while unindexed_traces(base):
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the text indexer did not catch up")
        time.sleep(0.2)
    return time.perf_counter() - start


def store_disk_bytes(url: str) -> int:
    """Bytes the store takes on disk: the SQLite file with its -wal/-shm, or chDB's directory."""
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    directory = Path(url.removeprefix("chdb://").split("?")[0])
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def chdb_active_bytes(url: str, settle_seconds: float = 300) -> tuple[int, int] | None:
    """The bytes of chDB's active parts (without the merged-away parts it keeps for a while), read
    after the server stopped: as the burst left them, and at rest, once the engine (open again)
    has no merge left to run (or after `settle_seconds`). Small parts compress worse than the
    merged ones, so the second is what the data takes to keep."""
    if not url.startswith("chdb://"):
        return None
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=url.split("?")[0])

    def active() -> int:
        query = "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = 'spanloom'"
        return int(client.query(query).result_rows[0][0])

    try:
        after_burst = active()
        deadline = time.monotonic() + settle_seconds
        quiet = 0  # polls in a row without a merge: one may start just after a check
        while quiet < 3 and time.monotonic() < deadline:
            time.sleep(2)
            running = client.query("SELECT count() FROM system.merges").result_rows[0][0]
            quiet = quiet + 1 if running == 0 else 0
        return after_burst, active()
    finally:
        client.close()


def start_server(
    url: str, environment: dict[str, str], launcher: Sequence[str] = ("-m", "spanloom.cli")
) -> tuple[subprocess.Popen, str, str]:
    """`spanloom serve` on the store at `url`: (process, HTTP base URL, gRPC target). `launcher`:
    what Python runs to get the CLI (chdb_ceiling.py's cut-down writer is another)."""
    port, grpc_port = free_port(), free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            *launcher,
            "serve",
            "--port",
            str(port),
            "--grpc-port",
            str(grpc_port),
            "--store",
            url,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        env=environment,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(server, base)
    return server, base, f"127.0.0.1:{grpc_port}"


def wait_until_serving(server: subprocess.Popen, base: str, seconds: float = 60) -> None:
    """Until the server at `base` answers; it is killed if it exits or does not answer in time."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/api/projects").status_code == 200:
                return
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.05)


def warm_median_ms(client: httpx.Client, requests: list[tuple[str, dict[str, str]]]) -> float:
    """The median of these GETs after the first three of them once as a warm-up."""
    median_ms(client, requests[:3])
    return median_ms(client, requests)


def run_store(
    url: str, payloads: list[bytes], huge: list[bytes], args: argparse.Namespace, ids: tuple
) -> dict:
    session_ids, user_ids = ids
    environment = dict(os.environ)
    if args.evaluators:
        environment["SPANLOOM_EVALUATORS_FILE"] = str(
            write_evaluators(Path(tempfile.mkdtemp()) / "evaluators.json")
        )
    server, base, _ = start_server(url, environment)
    figures: dict[str, Any] = {"url": url}
    try:
        start, cpu_before = time.perf_counter(), cpu_seconds(server.pid)
        send_all(f"{base}/v1/traces", payloads, args.senders)
        figures["elapsed"] = time.perf_counter() - start
        figures["rate"] = args.spans / figures["elapsed"]
        figures["cpu_us"] = (cpu_seconds(server.pid) - cpu_before) / args.spans * 1e6
        with httpx.Client(base_url=base, timeout=60) as client:
            projects = client.get("/api/projects").json()["items"]
            assert sum(project["span_count"] for project in projects) == args.spans, projects
            assert [p["session_count"] for p in projects] == [len(session_ids)] * len(PROJECTS), projects
            figures["sessions_ms"] = warm_median_ms(client, [("/api/sessions", {})] * 20)
            figures["sessions_user_ms"] = warm_median_ms(
                client, [("/api/sessions", {"user_id": user_ids[i % len(user_ids)]}) for i in range(20)]
            )
            for sort in ("cost", "errors", "turns"):
                figures[f"sessions_{sort}_ms"] = warm_median_ms(
                    client, [("/api/sessions", {"sort": sort})] * 20
                )
            figures["session_ms"] = warm_median_ms(client, distinct(session_ids, "/api/sessions"))
            path, params = distinct(session_ids, "/api/sessions", 1)[0]
            turns = client.get(path, params=params).json()["trace_count"]
            figures["session_turns"] = turns
            figures["users_ms"] = warm_median_ms(client, [("/api/users", {})] * 20)
            figures["projects_ms"] = warm_median_ms(client, [("/api/projects", {})] * 20)
            if args.evaluators:
                figures["judged"] = wait_for_results(client, args.spans // 3 * 3)
            # One session of 20,000 turns, sent after everything else.
            send_all(f"{base}/v1/traces", huge)
            huge_api = ("/api/sessions/huge-session", {"project": "shop"})
            figures["huge_ms"] = warm_median_ms(client, [huge_api] * 20)
            figures["huge_bytes"] = len(client.get(huge_api[0], params=huge_api[1]).content)
            page = ("/sessions/huge-session", {"project": "shop"})
            figures["huge_page_ms"] = warm_median_ms(client, [page] * 10)
            figures["huge_page_bytes"] = len(client.get(page[0], params=page[1]).content)
        figures["rss"] = peak_rss_mib(server.pid)
        # What stays resident once four people have opened that page at the same time.
        concurrent_page_loads(base, *page)
        figures["rss_after_pages"] = current_rss_mib(server.pid)
        # The disk figure counts the text search index whole (SQLite's indexer builds it behind
        # ingest): wait for its backlog to drain.
        figures["unindexed_at_end"] = unindexed_traces(base)
        figures["index_wait_s"] = wait_for_text_index(base)
    finally:
        server.terminate()
        server.wait(timeout=120)
    figures["disk"] = store_disk_bytes(url)
    figures["active"] = chdb_active_bytes(url)
    return figures


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


def start_round_server(
    directory: Path, environment: dict[str, str]
) -> tuple[subprocess.Popen, str, str, Path]:
    """`spanloom serve` over a fresh SQLite database: (process, HTTP base URL, gRPC target, file)."""
    db = directory / f"bench-{time.monotonic_ns()}.db"
    server, base, target = start_server(f"sqlite:///{db}", environment)
    return server, base, target, db


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
    server, base, target, db = start_round_server(directory, environment)
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


def migrate(source: str, destination: str, spans: int) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "spanloom.cli", "migrate", source, destination],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    if done.returncode != 0:
        last = f"FAILED ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return elapsed, last


def protocol_rounds(args: argparse.Namespace) -> None:
    """--protocol grpc: OTLP/gRPC and OTLP/HTTP in alternating rounds, each on a fresh SQLite store."""
    rounds = args.rounds or (3 if args.protocol == "grpc" else 1)
    payloads, session_ids, user_ids, _ = build_payloads(args.spans, args.sessions, args.users)
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
    print(
        "| server CPU per span (all threads, decoding processes too) |",
        f"{spread([r.cpu_per_span_us for r in mine], 'µs')} | |",
    )
    print(f"| server peak RSS (with its decoding processes) | {measured.rss_mib:.0f} MiB | < 250 MiB |")
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=None, help="default: about 30 turns per session")
    parser.add_argument("--users", type=int, default=None, help="default: sessions / 10")
    parser.add_argument(
        "--store", action="append", default=[], metavar="URL", help="a new store (repeatable)"
    )
    parser.add_argument("--senders", type=int, default=2, help="concurrent OTLP exporters")
    parser.add_argument("--huge-session", type=int, default=20_000, metavar="TRACES")
    parser.add_argument("--migrate", action="store_true", help="copy the first store into a new chDB store")
    parser.add_argument(
        "--evaluators", action="store_true", help="configure latency + contains_pii + refusal for the project"
    )
    parser.add_argument(
        "--protocol",
        choices=("http", "grpc"),
        default="http",
        help="how the spans are sent (grpc: against OTLP/HTTP in the same rounds, on SQLite)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="with --protocol grpc: rounds (default 3); --with-readers: 2"
    )
    parser.add_argument(
        "--with-readers",
        action="store_true",
        help="ingest alone vs while one client reads (reader_load.py), on SQLite; --rounds each",
    )
    args = parser.parse_args()
    if args.protocol == "grpc" and (args.store or args.migrate):
        parser.error("--protocol grpc compares the transports on SQLite: give no --store or --migrate")
    for url in args.store or ():
        # sqlite:///tmp/x.db is the relative tmp/x.db: a file left by an earlier run would be
        # counted in, and fail the count check only after the whole ingest.
        path = sqlite_path(url)
        if path is not None and path.exists():
            parser.error(f"{url} names {path.resolve()}, which exists: the stores must be new")
    # Each conversation id is a session in both projects, a turn per pass: 60 traces per id make
    # sessions of about 30 turns.
    args.sessions = args.sessions or max(1, args.spans // 3 // 60)
    args.users = args.users or max(1, args.sessions // 10)
    if args.protocol == "grpc":
        protocol_rounds(args)
        return
    if args.with_readers:
        payloads, _, _, _ = build_payloads(args.spans, args.sessions, args.users)

        def start(directory: Path) -> tuple[subprocess.Popen, str]:
            url = f"sqlite:///{directory / f'readers-{time.monotonic_ns()}.db'}"
            return start_server(url, dict(os.environ))[:2]

        reader_load.compare(payloads, args.spans, args.rounds or 2, start, send_all)
        return
    load_before = os.getloadavg()
    started = time.perf_counter()
    payloads, session_ids, user_ids, _ = build_payloads(args.spans, args.sessions, args.users)
    huge = huge_session_payloads(args.huge_session)
    built = time.perf_counter() - started
    otlp_per_span = sum(map(len, payloads)) / args.spans
    # The store also holds the huge session's spans (3 a turn): the disk figures are per span
    # stored and against every OTLP byte received, so its spans count on both sides.
    stored_spans = args.spans + 3 * args.huge_session
    otlp_received = sum(map(len, payloads)) + sum(map(len, huge))
    with tempfile.TemporaryDirectory() as tmp:
        stores = args.store or [f"sqlite:///{Path(tmp) / 'bench.db'}"]
        results = []
        for url in stores:
            results.append(run_store(url, payloads, huge, args, (session_ids, user_ids)))
            # Said at once: a long run that fails on a later store still tells this one's rate.
            done = results[-1]
            print(f"{url}: {done['rate']:,.0f} spans/s, {done['cpu_us']:.0f} us CPU/span", file=sys.stderr)
        floor = floor_spans_per_second(payloads, Path(tmp))
        moved = None
        if args.migrate:
            destination = f"chdb://{Path(tmp) / 'migrated'}"
            moved = migrate(stores[0], destination, args.spans)
            shutil.rmtree(Path(tmp) / "migrated", ignore_errors=True)
    print(
        f"{args.spans:,} spans ({otlp_per_span / 1024:.2f} KiB each on the wire),"
        f" {args.sessions:,} sessions per project of ~{results[0]['session_turns']} turns,"
        f" {args.users:,} users, 2 projects, {args.senders} senders,"
        f" {os.cpu_count()} CPUs; payloads built in {built:.0f} s; load average before"
        f" {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}\n"
    )
    names = [result["url"].split(":")[0] for result in results]
    print(f"| measure | {' | '.join(names)} | target (chdb) |")
    print(f"|---|{'---|' * len(names)}---|")

    def row(label: str, values: list[str], target: str = "") -> None:
        print(f"| {label} | {' | '.join(values)} | {target} |")

    row(
        "sustained ingest, spans/s (until the last batch is answered)", [f"{r['rate']:,.0f}" for r in results]
    )
    if len(results) > 1:
        row(
            f"ingest rate / {names[0]}'s",
            [f"{r['rate'] / results[0]['rate']:.2f}x" for r in results],
            ">= 1.5x sqlite",
        )
    row(
        "server CPU per span (all threads, decoding processes too)",
        [f"{r['cpu_us']:.0f} µs" for r in results],
    )
    row("server peak RSS (with its decoding processes)", [f"{r['rss']:,.0f} MiB" for r in results], "< 1 GiB")
    row(
        "OTLP bytes received per span (with the huge session's)",
        [f"{otlp_received / stored_spans:,.0f}"] * len(results),
    )
    row(
        "text index backlog after the reads (traces), and the wait for it",
        [f"{r['unindexed_at_end']:,}, {r['index_wait_s']:.1f} s" for r in results],
    )
    row(
        "bytes on disk per span (files, text index whole)",
        [f"{r['disk'] / stored_spans:,.0f}" for r in results],
    )
    row(
        "bytes on disk per span (active parts: after the burst; at rest)",
        [
            "; ".join(f"{size / stored_spans:,.0f}" for size in r["active"]) if r["active"] else "-"
            for r in results
        ],
    )
    row(
        "disk / OTLP bytes (chDB: after the burst; at rest)",
        ["; ".join(f"{size / otlp_received:.3f}" for size in (r["active"] or (r["disk"],))) for r in results],
        "<= 1/3 (0.333)",
    )
    for key, label in (
        ("sessions_ms", "GET /api/sessions (default sort)"),
        ("sessions_user_ms", "GET /api/sessions?user_id=U (20 users)"),
        ("sessions_cost_ms", "GET /api/sessions?sort=cost"),
        ("sessions_errors_ms", "GET /api/sessions?sort=errors"),
        ("sessions_turns_ms", "GET /api/sessions?sort=turns"),
        ("session_ms", "GET /api/sessions/{id}?project=P (20 sessions)"),
        ("users_ms", "GET /api/users"),
        ("projects_ms", "GET /api/projects"),
    ):
        row(f"{label}, median of 20", [f"{r[key]:.1f} ms" for r in results], "< 50 ms")
    row(
        f"first page of turns of a {args.huge_session:,}-trace session, median of 20",
        [f"{r['huge_ms']:.1f} ms" for r in results],
        "< 300 ms",
    )
    row(
        f"its first page as JSON, {args.huge_session:,}-trace session",
        [f"{r['huge_bytes'] / 1024:,.0f} KiB" for r in results],
        "<= 1 MiB",
    )
    row(
        "its first page as HTML (/sessions/{id}), median of 10",
        [f"{r['huge_page_ms']:.0f} ms, {r['huge_page_bytes'] / 1024:,.0f} KiB" for r in results],
        "<= 1 s",
    )
    row(
        "server RSS after 4 concurrent loads of that page",
        [f"{r['rss_after_pages']:,.0f} MiB" for r in results],
        "< 300 MiB (sqlite)",
    )
    row("floor (decode + plain SQLite rows), spans/s", [f"{floor:,.0f}"] * len(results))
    if args.evaluators:
        row("server evaluator results (3 per LLM span)", [f"{r['judged']:,}" for r in results])
    if moved is not None:
        print(
            f"\nspanloom migrate {stores[0]} -> chdb: {moved[0]:.0f} s"
            f" ({args.spans / moved[0]:,.0f} spans/s); {moved[1]}"
        )


if __name__ == "__main__":
    main()
