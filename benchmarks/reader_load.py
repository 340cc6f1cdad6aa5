"""Ingest alone against ingest while one client reads, in one run: does reading starve ingest?

`benchmarks/ingest.py --with-readers` calls `compare`. Each round starts a fresh server, loads a
5,000-span agent trace into it (untimed), then sends every payload of the ingest benchmark, timed;
in the "with readers" rounds a second process loops, for as long as that ingest lasts, over what a
dashboard user does: the sessions list, one of the sessions it lists (a different one each time, so
no cache serves it) and the whole 5,000-span trace, page after page at the API's default page size.
Rounds alternate (alone, with readers, with readers, alone, ...) so that the rest of the machine's
load weighs on both alike; rates are given as min / median, the drop per pair of rounds, and the
readers' latencies (median, p95) over every request they made during ingest.

Run on its own as ``python benchmarks/reader_load.py BASE_URL TRACE_ID``, it is that reader: it
prints ``ready`` after its first loop, reads until its standard input closes, then prints its
latencies as one JSON line.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanloom.demo import build_conversations, llm_span_attributes

try:  # the reader's own parsing competes with the server for the machine's two cores
    from orjson import loads as parse
except ImportError:  # pragma: no cover
    from json import loads as parse

BIG_TRACE_SPANS = 5_000
BATCH = 512
READS = ("sessions list", "session", "trace page")
HEADERS = {"Content-Type": "application/x-protobuf"}

# (process, base URL): a fresh `spanloom serve` over a fresh database, and how to stop it.
StartServer = Callable[[Path], tuple[subprocess.Popen, str]]
SendAll = Callable[[str, list[bytes]], None]


def _kv(attributes: dict[str, Any]) -> list[KeyValue]:
    return [
        KeyValue(key=key, value=AnyValue(int_value=value))
        if isinstance(value, int)
        else KeyValue(key=key, value=AnyValue(string_value=str(value)))
        for key, value in attributes.items()
    ]


def big_trace_payloads(spans: int = BIG_TRACE_SPANS) -> tuple[str, list[bytes]]:
    """One long agent run: a root and `spans - 1` children, LLM calls and tool calls in turn, in
    the demo's shape (realistic message text), as OTLP requests of BATCH spans; and its trace id."""
    rng = random.Random(5)
    turns = [turn for conversation in build_conversations(40, 5, seed=5) for turn in conversation.turns]
    trace_id, root_id = rng.randbytes(16), rng.randbytes(8)
    ids = {"session.id": "agent-run-0001", "user.id": "user-agent"}
    start = time.time_ns() - 3_600 * 10**9
    built = [
        Span(
            trace_id=trace_id,
            span_id=root_id,
            name="agent",
            start_time_unix_nano=start,
            end_time_unix_nano=start + spans * 10**9,
            attributes=_kv({"openinference.span.kind": "AGENT", "input.value": turns[0].question, **ids}),
        )
    ]
    for index in range(1, spans):
        turn = turns[index % len(turns)]
        if index % 2:
            name, attributes = "ChatCompletion", {**llm_span_attributes(turn, []), **ids}
        else:
            attributes = {
                "openinference.span.kind": "TOOL",
                "tool.name": turn.tool or "search_docs",
                "input.value": turn.question,
                "output.value": turn.answer,
                **ids,
            }
            name = attributes["tool.name"]
        begin = start + index * 10**9
        built.append(
            Span(
                trace_id=trace_id,
                span_id=rng.randbytes(8),
                parent_span_id=root_id,
                name=name,
                start_time_unix_nano=begin,
                end_time_unix_nano=begin + turn.latency_ms * 10**6,
                attributes=_kv(attributes),
            )
        )
    payloads = []
    for first in range(0, len(built), BATCH):
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(_kv({"project.name": "shop", "service.name": "agent"}))
        resource_spans.scope_spans.add().spans.extend(built[first : first + BATCH])
        payloads.append(request.SerializeToString())
    return trace_id.hex(), payloads


# --- the reader process ---


def _timed_get(client: httpx.Client, path: str, params: dict[str, str], into: list[float]) -> Any:
    start = time.perf_counter()
    response = client.get(path, params=params)
    into.append((time.perf_counter() - start) * 1000)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:200]}")
    return parse(response.content)


def read_loop(base: str, trace_id: str, stop: threading.Event) -> dict[str, list[float]]:
    """What one dashboard user does, over and over until `stop`: list, open a session, read the
    big trace whole. Latencies in ms by kind of request (those of the first loop left out)."""
    latencies: dict[str, list[float]] = {kind: [] for kind in READS}
    loops = 0
    with httpx.Client(base_url=base, timeout=120) as client:
        while not stop.is_set():
            sessions = _timed_get(client, "/api/sessions", {}, latencies["sessions list"])["items"]
            picked = sessions[loops % len(sessions)]
            _timed_get(
                client,
                f"/api/sessions/{picked['session_id']}",
                {"project": picked["project"]},
                latencies["session"],
            )
            cursor: str | None = None
            while True:
                page = _timed_get(
                    client,
                    f"/api/traces/{trace_id}",
                    {"cursor": cursor} if cursor else {},
                    latencies["trace page"],
                )
                cursor = page["next_cursor"]
                if not cursor:
                    break
            loops += 1
            if loops == 1:
                for kind in latencies.values():
                    kind.clear()  # connection set-up and cold caches: not what ingest meets
                print("ready", flush=True)
    return latencies


def _reader_main(base: str, trace_id: str) -> None:
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    print(json.dumps(read_loop(base, trace_id, stop)), flush=True)


class Reader:
    """`read_loop` in a process of its own, as a separate client is: its parsing competes with
    the server for the CPUs, not with the benchmark's senders for their GIL."""

    def __init__(self, base: str, trace_id: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, base, trace_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if line.strip() != "ready":
            self._process.kill()
            raise RuntimeError(f"the reader did not start: {line!r}")

    def stop(self) -> dict[str, list[float]]:
        stdout, _ = self._process.communicate(timeout=120)
        if self._process.returncode != 0:
            raise RuntimeError(f"the reader failed ({self._process.returncode})")
        return json.loads(stdout.strip().splitlines()[-1])


# --- the comparison ---


@dataclass
class Rounds:
    alone: list[float] = field(default_factory=list)  # spans/s
    with_readers: list[float] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in READS})
    loads: list[float] = field(default_factory=list)  # 1-minute load average at each round's start


def one_round(
    payloads: list[bytes],
    spans: int,
    big: tuple[str, list[bytes]],
    start_server: StartServer,
    send_all: SendAll,
    directory: Path,
    readers: bool,
    rounds: Rounds,
) -> None:
    # A directory per round, removed after it: each database is hundreds of MB.
    directory = Path(tempfile.mkdtemp(dir=directory))
    server, base = start_server(directory)
    try:
        trace_id, trace_payloads = big
        send_all(f"{base}/v1/traces", trace_payloads)
        reader = Reader(base, trace_id) if readers else None
        rounds.loads.append(os.getloadavg()[0])
        start = time.perf_counter()
        send_all(f"{base}/v1/traces", payloads)
        rate = spans / (time.perf_counter() - start)
        if reader is not None:
            for kind, values in reader.stop().items():
                rounds.latencies[kind].extend(values)
            rounds.with_readers.append(rate)
        else:
            rounds.alone.append(rate)
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(directory, ignore_errors=True)


def _spread(values: list[float], digits: int = 0) -> str:
    return f"{min(values):,.{digits}f} / {statistics.median(values):,.{digits}f}"


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def compare(
    payloads: list[bytes], spans: int, rounds: int, start_server: StartServer, send_all: SendAll
) -> Rounds:
    """Ingest `payloads` (`spans` spans) alone and with the reader, `rounds` times each,
    interleaved, and print the table."""
    big = big_trace_payloads()
    result = Rounds()
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(rounds):
            # alone, readers | readers, alone | ...: each order as often as the other.
            for readers in (False, True) if number % 2 == 0 else (True, False):
                one_round(payloads, spans, big, start_server, send_all, Path(tmp), readers, result)
    report(result, spans, sum(map(len, payloads)))
    return result


def report(result: Rounds, spans: int, payload_bytes: int) -> None:
    """The tables: rates alone and with the reader, the drop, the reads' latencies."""
    rounds = len(result.alone)
    drops = [1 - w / a for a, w in zip(result.alone, result.with_readers, strict=True)]
    overall = 1 - statistics.median(result.with_readers) / statistics.median(result.alone)
    print(
        f"{spans:,} spans ({payload_bytes / spans / 1024:.1f} KiB each on the wire), "
        f"{rounds} rounds each, alternating; {os.cpu_count()} CPUs, 1-min load average at the rounds' "
        f"start {_spread(result.loads, 2)} (min / median)\n"
    )
    print("| measure | min / median | target |")
    print("|---|---|---|")
    print(f"| ingest alone | {_spread(result.alone)} spans/s | |")
    print(f"| ingest while one client reads | {_spread(result.with_readers)} spans/s | |")
    print(
        f"| drop, per pair of rounds | {min(drops):.0%} / {statistics.median(drops):.0%} "
        f"(of the median rates: {overall:.0%}) | at most 20% |"
    )
    print("\n| read during ingest | requests | median | p95 | target |")
    print("|---|---:|---:|---:|---|")
    targets = {"sessions list": "median < 20 ms, p95 < 50 ms"}
    for kind in READS:
        values = result.latencies[kind]
        if values:
            print(
                f"| {kind} | {len(values)} | {statistics.median(values):.1f} ms | {_p95(values):.1f} ms "
                f"| {targets.get(kind, '')} |"
            )


if __name__ == "__main__":
    _reader_main(sys.argv[1], sys.argv[2])
