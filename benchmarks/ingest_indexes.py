"""What each index shape costs the SQLite writer: the same spans written in-process (no HTTP) into
a fresh store per round, the schema as shipped against variants of it, in interleaved rounds.

Run: ``python benchmarks/ingest_indexes.py [--spans 30000] [--rounds 3]``. The spans are
benchmarks/ingest.py's (realistic turns of two projects sharing session ids), normalized and
prepared before the clock starts, then written one request (512 spans) per transaction, as the
server's writer does under two senders (``--per-transaction N``: N requests committed together,
as the writer takes them when more senders keep its queue full). Prints per variant the writer's
CPU per span (min / median over the rounds: the machine is shared, so compare the ratios), and
the bytes it appended to the WAL per span (checkpoints off: every page a commit dirtied is
written once; exact, whatever the load).

Variants: ``shipped`` (the current schema); ``trends-apart`` (schema 7's shape: the trends'
covering index beside a narrow traces_by_project, two indexes with the same leading key);
``no-trend-columns`` (traces_by_project without the trends' columns: what covering them costs);
``no-replay`` (without sessions_by_replay_of); ``trace-sorts`` (with the five indexes that
sorted every project's traces by latency, tokens, cost, errors and spans, schemas 4 to 11);
``no-session-user-sorts`` (without the indexes that sort sessions and users, schema 4's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import ingest  # benchmarks/, beside this script

from spanloom.server.ingest.decode import decode_protobuf
from spanloom.server.ingest.limits import IngestLimits
from spanloom.server.ingest.normalize import normalize_request
from spanloom.server.pricing import load_price_table
from spanloom.server.settings import Settings
from spanloom.server.store.sqlite import ownership
from spanloom.server.store.sqlite.connection import connect_writer
from spanloom.server.store.sqlite.migrations import migrate
from spanloom.server.store.sqlite.rollups import Waiting, write_batch
from spanloom.server.store.sqlite.span_rows import prepare

VARIANTS: dict[str, list[str]] = {
    "shipped": [],
    "trends-apart": [
        "DROP INDEX traces_by_project",
        "CREATE INDEX traces_by_project ON traces (project, start_ns, trace_id)",
        "CREATE INDEX traces_for_trends ON traces (project, start_ns, latency_ms, error_count, cost_nanos)",
    ],
    "no-trend-columns": [
        "DROP INDEX traces_by_project",
        "CREATE INDEX traces_by_project ON traces (project, start_ns, trace_id)",
    ],
    "no-replay": ["DROP INDEX sessions_by_replay_of"],
    # Schemas 4 to 11 had them (schema 12 dropped them): what they cost.
    "trace-sorts": [
        f"CREATE INDEX traces_by_{name} ON traces ({column}, trace_id)"
        for name, column in (
            ("latency", "latency_ms"),
            ("tokens", "total_tokens"),
            ("cost", "cost"),
            ("errors", "error_count"),
            ("spans", "span_count"),
        )
    ],
    "no-session-user-sorts": [
        *(f"DROP INDEX sessions_by_{name}" for name in ("turns", "tokens", "cost", "latency", "errors")),
        *(
            f"DROP INDEX users_by_{name}"
            for name in ("first_seen", "sessions", "traces", "tokens", "cost", "errors", "error_rate")
        ),
    ],
}


def write_round(
    payloads: list[bytes], ddl: list[str], directory: Path, per_transaction: int = 1
) -> tuple[float, float]:
    """(writer CPU µs per span, WAL bytes per span) of one fresh store, `per_transaction` requests
    committed together."""
    prices, limits = load_price_table(None), IngestLimits.from_settings(Settings())
    prepared = [prepare(normalize_request(decode_protobuf(body), prices, limits).spans) for body in payloads]
    spans = sum(len(batch) for batch in prepared)
    db = directory / f"writer-{time.monotonic_ns()}.db"
    connection = connect_writer(db)
    try:
        migrate(connection)
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        for statement in ddl:
            connection.execute(statement)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL holds only what the writes add
        waiting = Waiting()
        started = time.process_time()
        for first in range(0, len(prepared), per_transaction):
            connection.execute("BEGIN IMMEDIATE")
            requests = [(batch, None) for batch in prepared[first : first + per_transaction]]
            for claim in ownership.claim(connection, requests):
                write_batch(connection, claim.spans, waiting)
            connection.execute("COMMIT")
        cpu = time.process_time() - started
        wal = Path(f"{db}-wal").stat().st_size
    finally:
        connection.close()
    return cpu / spans * 1e6, wal / spans


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--per-transaction",
        type=int,
        default=1,
        metavar="N",
        help="requests committed together (the server's writer takes what is queued: 1 with two senders)",
    )
    args = parser.parse_args()
    sessions = max(1, args.spans // 3 // 60)
    payloads, *_ = ingest.build_payloads(args.spans, sessions, max(1, sessions // 10))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(args.rounds):
            names = list(VARIANTS) if number % 2 == 0 else list(VARIANTS)[::-1]
            for name in names:
                results[name].append(write_round(payloads, VARIANTS[name], Path(tmp), args.per_transaction))
    shipped = statistics.median(cpu for cpu, _ in results["shipped"])
    shipped_wal = results["shipped"][0][1]
    print(
        f"{args.spans:,} spans, {args.per_transaction} request(s) of {ingest.BATCH} per transaction,"
        f" {args.rounds} interleaved rounds, load average before {load_before:.2f},"
        f" after {os.getloadavg()[0]:.2f}\n"
    )
    print(
        "| variant | writer CPU µs/span (min / median) | vs shipped (medians) | WAL bytes/span | vs shipped |"
    )
    print("|---|---|---|---|---|")
    for name, rounds in results.items():
        cpus = [cpu for cpu, _ in rounds]
        median, wal = statistics.median(cpus), rounds[0][1]
        print(
            f"| {name} | {min(cpus):.1f} / {median:.1f} | {median - shipped:+.1f} µs |"
            f" {wal:,.0f} | {wal - shipped_wal:+,.0f} |"
        )


if __name__ == "__main__":
    main()
