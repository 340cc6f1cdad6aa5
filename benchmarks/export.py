"""Exports of 100,000 sessions through a real `spanloom serve`: sessions/s and the server's peak RSS,
on SQLite and chDB, against paging through GET /api/sessions (the list a client would otherwise
walk) in the same run.

The stores are made once through the store API (sessions of 1 to 5 turns, each turn an LLM call
with real prose from the standard library's docstrings, distinct ids, OpenInference messages) and
kept under /tmp/spanloom-export-bench, so reruns start at once (--fresh makes them again). Each
measured export starts a fresh server process, so its peak RSS (VmHWM) is that export's alone;
the idle server's RSS is shown beside it. Rounds interleave the backends and formats, so the
machine's other load weighs on all alike; rates are min / median over the rounds.

    python benchmarks/export.py [--sessions 100000] [--rounds 2] [--backends sqlite,chdb]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import httpx
from ingest import free_port, peak_rss_mib, text_corpus

from spanloom.server.store.base import SpanRecord, StoreBusyError
from spanloom.server.store.url import open_store

CACHE = Path("/tmp/spanloom-export-bench")
PROJECT = "bench"
T0 = 1_760_000_000 * 10**9
SYSTEM = "You are a helpful support assistant for an online shop. Answer briefly and politely."
BATCH = 2_000
# What each measured run asks for: (label, query parameters).
EXPORTS = (
    ("jsonl", {"format": "jsonl"}),
    ("parquet", {"format": "parquet"}),
    ("dataset jsonl", {"format": "jsonl", "as": "dataset"}),
    ("list pages", None),  # the alternative: GET /api/sessions?limit=1000, cursor after cursor
)


def store_url(backend: str, sessions: int) -> str:
    base = CACHE / f"{backend}-{sessions}"
    return f"sqlite:///{base}.db" if backend == "sqlite" else f"chdb:///{base}"


def _turn_span(rng: random.Random, corpus: list[str], session: int, turn: int, start_ns: int) -> SpanRecord:
    question = rng.choice(corpus)
    answer = " ".join(rng.sample(corpus, rng.randint(2, 6)))
    prompt, completion = rng.randint(50, 900), rng.randint(20, 400)
    number = session * 8 + turn
    return SpanRecord(
        trace_id=f"{number:032x}",
        span_id=f"{number:016x}",
        parent_span_id=None,
        name="ChatCompletion",
        project=PROJECT,
        start_time_ns=start_ns,
        end_time_ns=start_ns + rng.randint(300, 9_000) * 1_000_000,
        span_kind="LLM",
        session_id=f"session-{session:07d}",
        user_id=f"user-{rng.randrange(max(1, session // 20 + 1)):06d}",
        status_code="ERROR" if rng.random() < 0.02 else "OK",
        model="gpt-4o-mini",
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cost=(prompt * 0.15 + completion * 0.6) / 1e6,
        input=question,
        output=answer,
        attributes={
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": SYSTEM,
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": question,
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": answer,
        },
    )


def build(backend: str, sessions: int) -> tuple[int, float]:
    """Write the sessions into a fresh store; (turns written, seconds)."""
    rng = random.Random(17)
    corpus = text_corpus()
    began = time.perf_counter()
    store = open_store(store_url(backend, sessions))
    pending: list[Future] = []
    batch: list[SpanRecord] = []
    turns = 0

    def send(spans: list[SpanRecord]) -> None:
        while True:
            try:
                pending.append(store.insert_spans(spans))
                return
            except StoreBusyError:
                pending.pop(0).result()

    try:
        for session in range(sessions):
            start = T0 + session * 20 * 10**9  # sessions 20 s apart, turns a few seconds apart
            for turn in range(rng.randint(1, 5)):
                batch.append(_turn_span(rng, corpus, session, turn, start + turn * 3 * 10**9))
                turns += 1
            if len(batch) >= BATCH:
                send(batch)
                batch = []
                while len(pending) > 4:
                    pending.pop(0).result()
            if session % 10_000 == 0:
                print(f"  {backend}: {session:,} sessions written", file=sys.stderr)
        if batch:
            send(batch)
        for future in pending:
            future.result()
    finally:
        store.close()
    return turns, time.perf_counter() - began


def ensure(backend: str, sessions: int, fresh: bool) -> None:
    path = Path(store_url(backend, sessions).split("///", 1)[1])
    marker = path.with_name(path.name + ".complete")
    if marker.exists() and not fresh:
        return
    if path.is_dir():
        shutil.rmtree(path)
    for stale in path.parent.glob(path.name + "*"):
        if stale.is_file():
            stale.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the {backend} store of {sessions:,} sessions under {path.parent}", file=sys.stderr)
    turns, seconds = build(backend, sessions)
    marker.write_text(f"{turns}\n")
    print(f"  {backend}: {turns:,} turns in {seconds:.0f} s", file=sys.stderr)


def start_server(backend: str, sessions: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "spanloom.cli", "serve", "--port", str(port), "--grpc-port", "0"]
    command += ["--store", store_url(backend, sessions), "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode() if process.stderr else "serve exited")
        try:
            if httpx.get(f"{url}/api/projects", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("spanloom serve did not answer")
        time.sleep(0.2)


def _export(client: httpx.Client, params: dict[str, str]) -> tuple[int, int]:
    """(rows, bytes) of one streamed export, read and dropped a chunk at a time."""
    size = 0
    lines = 0
    with client.stream("GET", "/api/sessions/export", params={"project": PROJECT, **params}) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes(256 * 1024):
            size += len(chunk)
            lines += chunk.count(b"\n")
    return lines, size


def _list_pages(client: httpx.Client) -> tuple[int, int]:
    rows = size = 0
    cursor = None
    while True:
        response = client.get("/api/sessions", params={"project": PROJECT, "limit": 1000, "cursor": cursor})
        response.raise_for_status()
        page = response.json()
        rows += len(page["items"])
        size += len(response.content)
        cursor = page["next_cursor"]
        if cursor is None:
            return rows, size


def measure(backend: str, sessions: int, params: dict[str, str] | None) -> dict[str, float]:
    process, url = start_server(backend, sessions)
    try:
        idle = peak_rss_mib(process.pid)
        with httpx.Client(base_url=url, timeout=httpx.Timeout(60, read=600)) as client:
            began = time.perf_counter()
            rows, size = _list_pages(client) if params is None else _export(client, params)
            seconds = time.perf_counter() - began
        peak = peak_rss_mib(process.pid)
    finally:
        process.kill()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()
    if params is None or params.get("format") == "jsonl":
        assert rows == sessions, f"{rows} rows for {sessions} sessions"
    return {"rate": sessions / seconds, "seconds": seconds, "peak": peak, "idle": idle, "mb": size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,chdb")
    parser.add_argument("--fresh", action="store_true", help="Make the stores again.")
    args = parser.parse_args()
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    for backend in backends:
        ensure(backend, args.sessions, args.fresh)
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for round_number in range(args.rounds):
        order: list[tuple[str, str, dict[str, str] | None]] = [
            (backend, label, params) for backend in backends for label, params in EXPORTS
        ]
        if round_number % 2:
            order.reverse()
        for backend, label, params in order:
            result = measure(backend, args.sessions, params)
            results.setdefault((backend, label), []).append(result)
            print(
                f"  round {round_number + 1}: {backend} {label}: {result['rate']:,.0f} sessions/s,"
                f" peak RSS {result['peak']:.0f} MiB",
                file=sys.stderr,
            )
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\n{args.sessions:,} sessions, {args.rounds} rounds, load average {' '.join(load)}")
    header = (
        f"{'backend':8} {'export':14} {'sessions/s min/median':>22} {'vs list':>8}"
        f" {'peak RSS MiB max':>17} {'idle RSS':>9} {'MB out':>8}"
    )
    print(header)
    print("-" * len(header))
    for backend in backends:
        baseline = statistics.median(r["rate"] for r in results[(backend, "list pages")])
        for label, _ in EXPORTS:
            runs = results[(backend, label)]
            rates = [run["rate"] for run in runs]
            median: Callable[[list[float]], float] = statistics.median
            print(
                f"{backend:8} {label:14} {min(rates):>10,.0f} / {median(rates):>9,.0f}"
                f" {median(rates) / baseline:>7.2f}x {max(run['peak'] for run in runs):>17.0f}"
                f" {max(run['idle'] for run in runs):>9.0f} {runs[0]['mb']:>8.1f}"
            )
    if len(backends) > 1:
        print("\nchDB / SQLite, median sessions/s:")
        for label, _ in EXPORTS:
            ratio = statistics.median(r["rate"] for r in results[(backends[1], label)]) / statistics.median(
                r["rate"] for r in results[(backends[0], label)]
            )
            print(f"  {label:14} {ratio:.2f}x")


if __name__ == "__main__":
    main()
