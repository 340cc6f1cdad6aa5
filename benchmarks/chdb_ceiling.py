"""The ceiling of the ClickHouse store's ingest on this machine: how fast chDB itself stores the
spans rows, against the whole SQLite store, on the same spans in one run.

The ClickHouse issue asks the chDB store to ingest at least 1.5x the SQLite store's rate. Whatever
else the store does per batch (its trace, session and user rows, the lookups that keep a retried
batch from counting twice), it must at least hand every span row to the engine. This measures
that alone, in-process and serially, with every row built beforehand (not timed):

- **SQLite, whole store**: `insert_spans(batch).result()` for each request's spans: row building,
  rollups, indexes, commit. The rate the chDB store must beat 1.5 times.
- **chDB, whole store**: the same through the ClickHouse store.
- **chDB, spans rows only**: the store's own `spans` table (its codecs, order key and indexes), one
  INSERT of a request's rows (512) at a time, as the store's writer sends them, nothing else.
- **chDB, bare table**: the same rows into a MergeTree with the same column types and no codecs,
  no order key, no index: what the engine costs for these rows at the least; also with two
  requests' rows per INSERT, the most that two senders waiting for their answers can have in
  flight (an acknowledged span is a stored one, so a batch cannot wait for more).

If the last two are below 1.5x SQLite's whole-store rate, no chDB store design that keeps every
span row can meet that target here: the engine's insert alone is the bound. Each chDB measure runs
in a process of its own (one embedded engine per process), each store on a new directory; rounds
alternate the measures, and rates are min / median over the rounds.

With ``--served`` the same comparison runs behind the real server, as `ingest.py` measures it
(`spanloom serve`, two senders of 512-span OTLP requests, every request acknowledged once stored):
the whole SQLite store, the whole chDB store, and a chDB server whose writer does nothing but the
span rows' INSERT, then also a row per trace (`ceiling_serve.py`). Those pay what every chDB design
pays behind a server (HTTP, decoding, the span rows built and inserted, the merges of their parts;
then the least the trace and session lists need) and nothing else: where they are below 1.5x the
SQLite server's rate, no design of the store that writes those rows meets the target here.

Run: ``python benchmarks/chdb_ceiling.py [--spans 100000] [--rounds 2] [--served]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ingest  # benchmarks/, beside this script

from spanloom.server.ingest.decode import decode_protobuf
from spanloom.server.ingest.limits import IngestLimits
from spanloom.server.ingest.normalize import normalize_request
from spanloom.server.pricing import load_price_table
from spanloom.server.settings import Settings
from spanloom.server.store.base import SpanRecord
from spanloom.server.store.url import open_store

MEASURES = {
    "sqlite": "SQLite, whole store",
    "chdb": "chDB, whole store",
    "chdb-spans": "chDB, spans rows only (the store's table)",
    "chdb-bare": "chDB, spans rows only (bare MergeTree, no codecs)",
    "chdb-bare-1024": "chDB, spans rows only (bare MergeTree), two requests' rows per INSERT",
}


def _batches(spans: int) -> list[list[SpanRecord]]:
    payloads, *_ = ingest.build_payloads(spans, max(1, spans // 90), max(1, spans // 900))
    prices, limits = load_price_table(None), IngestLimits.from_settings(Settings())
    return [normalize_request(decode_protobuf(payload), prices, limits).spans for payload in payloads]


def _whole_store(url: str, batches: list[list[SpanRecord]]) -> float:
    store = open_store(url)
    try:
        began = time.perf_counter()
        for batch in batches:
            store.insert_spans(batch).result()
        return time.perf_counter() - began
    finally:
        store.close()


def _spans_rows_only(directory: Path, batches: list[list[SpanRecord]], bare: bool, per_insert: int) -> float:
    from spanloom.server.store.clickhouse import schema
    from spanloom.server.store.clickhouse.location import connect, parse_location
    from spanloom.server.store.clickhouse.rows import span_rows

    location = parse_location(f"chdb://{directory}")
    assert location is not None
    open_store(location.url).close()  # the store's schema, as it creates it
    client = connect(location, location.database)
    table = schema.SPANS
    if bare:
        typed = tuple(zip(table.column_names, table.column_types, strict=True))
        columns = ", ".join(f"{name} {kind}" for name, kind in typed)
        client.command(f"CREATE TABLE bare_spans ({columns}) ENGINE = MergeTree ORDER BY tuple()")
        table = schema.Table("bare_spans", typed, "tuple()")
    rows = [
        [row for batch in batches[start : start + per_insert] for row in span_rows(batch)]
        for start in range(0, len(batches), per_insert)
    ]
    began = time.perf_counter()
    for block in rows:
        schema.insert(client, table, block)
    elapsed = time.perf_counter() - began
    client.close()
    return elapsed


def measure(name: str, spans: int) -> float:
    """One measure in this process: spans per second."""
    batches = _batches(spans)
    count = sum(map(len, batches))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        if name == "sqlite":
            elapsed = _whole_store(f"sqlite:///{directory / 'spans.db'}", batches)
        elif name == "chdb":
            elapsed = _whole_store(f"chdb://{directory / 'ch'}", batches)
        else:
            bare = name.startswith("chdb-bare")
            elapsed = _spans_rows_only(directory / "ch", batches, bare, 2 if name.endswith("1024") else 1)
    return count / elapsed


CLI = ("-m", "spanloom.cli")
CEILING = (str(Path(__file__).with_name("ceiling_serve.py")),)
SERVED = {  # name -> (label, what Python runs, the rows the ceiling writes)
    "sqlite": ("SQLite, whole store", CLI, None),
    "chdb": ("chDB, whole store", CLI, None),
    "chdb-spans": ("chDB, the span rows alone (`ceiling_serve.py`)", CEILING, "spans"),
    "chdb-spans-traces": ("chDB, the span rows and a row per trace", CEILING, "spans+traces"),
}


def served(name: str, payloads: list[bytes], spans: int) -> tuple[float, float]:
    """One server on a new store, fed every payload: (spans per second, server CPU µs per span,
    its decoding processes included)."""
    _, launcher, rows = SERVED[name]
    environment = dict(os.environ)
    if rows is not None:
        environment["SPANLOOM_CEILING_ROWS"] = rows
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'spans.db'}" if name == "sqlite" else f"chdb://{Path(tmp) / 'ch'}"
        server, base, _ = ingest.start_server(url, environment, launcher)
        try:
            began, cpu_before = time.perf_counter(), ingest.cpu_seconds(server.pid)
            ingest.send_all(f"{base}/v1/traces", payloads)
            elapsed = time.perf_counter() - began
            cpu_us = (ingest.cpu_seconds(server.pid) - cpu_before) / spans * 1e6
        finally:
            server.terminate()
            server.wait()
    return spans / elapsed, cpu_us


def served_rounds(args: argparse.Namespace) -> None:
    sessions = max(1, args.spans // 3 // 60)  # ingest.py's shape: sessions of about 30 turns
    payloads, *_ = ingest.build_payloads(args.spans, sessions, max(1, sessions // 10))
    rates: dict[str, list[float]] = {name: [] for name in SERVED}
    cpus: dict[str, list[float]] = {name: [] for name in SERVED}
    load_before = os.getloadavg()[0]
    for round_ in range(args.rounds):
        for name in list(SERVED) if round_ % 2 == 0 else list(reversed(SERVED)):
            rate, cpu_us = served(name, payloads, args.spans)
            rates[name].append(rate)
            cpus[name].append(cpu_us)
            print(f"round {round_ + 1}, {name}: {rate:,.0f} spans/s, {cpu_us:.0f} µs/span", file=sys.stderr)
    sqlite = statistics.median(rates["sqlite"])
    print(
        f"{args.spans:,} spans of benchmarks/ingest.py's data, {args.rounds} round(s), through"
        f" `spanloom serve`, two senders; {os.cpu_count()} CPUs, load average {load_before:.2f} before,"
        f" {os.getloadavg()[0]:.2f} after\n"
    )
    print("| measure | spans/s, each round | median | server CPU per span, median | median / SQLite's |")
    print("|---|---|---:|---:|---:|")
    for name, (label, _, _) in SERVED.items():
        values = rates[name]
        print(
            f"| {label} | {', '.join(f'{value:,.0f}' for value in values)} |"
            f" {statistics.median(values):,.0f} | {statistics.median(cpus[name]):.0f} µs |"
            f" {statistics.median(values) / sqlite:.2f}x |"
        )
    print(f"| the target: 1.5x SQLite's whole store | | {1.5 * sqlite:,.0f} | | 1.50x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--served", action="store_true", help="through `spanloom serve`, as ingest.py")
    parser.add_argument("--one", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.served:
        served_rounds(args)
        return
    if args.one:
        print(measure(args.one, args.spans))
        return
    rates: dict[str, list[float]] = {name: [] for name in MEASURES}
    load_before = os.getloadavg()[0]
    for round_ in range(args.rounds):
        order = list(MEASURES) if round_ % 2 == 0 else list(reversed(MEASURES))
        for name in order:
            out = subprocess.run(
                [sys.executable, __file__, "--one", name, "--spans", str(args.spans)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rates[name].append(float(out.strip().splitlines()[-1]))
    sqlite = statistics.median(rates["sqlite"])
    print(
        f"{args.spans:,} spans of benchmarks/ingest.py's data, {args.rounds} round(s), serial, in-process;"
        f" {os.cpu_count()} CPUs, load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after\n"
    )
    print("| measure | spans/s, min / median | median / SQLite's whole store |")
    print("|---|---:|---:|")
    for name, label in MEASURES.items():
        values = rates[name]
        print(
            f"| {label} | {min(values):,.0f} / {statistics.median(values):,.0f} |"
            f" {statistics.median(values) / sqlite:.2f}x |"
        )
    print(f"| the target: 1.5x SQLite's whole store | {1.5 * sqlite:,.0f} | 1.50x |")


if __name__ == "__main__":
    main()
