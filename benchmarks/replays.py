"""The replays lookup of every session page: `Store.list_replays` (SQLite: a partial index on the
metadata's replay_of) against the sessions list's metadata filter, which reads every session of
the project, in the same run over the same file.

Run: ``python benchmarks/replays.py [--sessions 50000] [--rounds 15]``. One project of
`--sessions` one-turn sessions with realistic metadata (plan, app version, region), one in 500 of
them a replay of an earlier session. Rounds are interleaved (index, scan, index, ...), each
asking for the replays of a session that has one and of one that has none (the usual case);
prints min and median milliseconds and the scan/index ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from spanloom.server.store.base import REPLAY_OF, ListQuery, SpanRecord, Store
from spanloom.server.store.url import open_store

BATCH = 2000
EVERY = 500  # one session in EVERY replays an earlier one
BASE_NS = 1_750_000_000 * 10**9


def fill(store: Store, sessions: int) -> tuple[str, str]:
    """(a session with a replay, a session without) after writing `sessions` sessions."""
    batch: list[SpanRecord] = []
    replayed = ""
    for number in range(sessions):
        session_id = f"conv-{number:07d}-{(number * 7919) % 100_003:05d}"
        metadata: dict[str, object] = {
            "plan": ("free", "pro", "team")[number % 3],
            "app_version": f"2.{number % 7}.{number % 13}",
            "region": ("eu-west-1", "us-east-1", "ap-south-1")[number % 3],
        }
        if number % EVERY == EVERY - 1:
            replayed = f"conv-{number - 1:07d}-{((number - 1) * 7919) % 100_003:05d}"
            metadata[REPLAY_OF] = replayed
        start = BASE_NS + number * 10**9
        batch.append(
            SpanRecord(
                trace_id=f"{number + 1:032x}",
                span_id=f"{number + 1:016x}",
                parent_span_id=None,
                name="chat",
                project="shop",
                start_time_ns=start,
                end_time_ns=start + 900_000_000,
                session_id=session_id,
                user_id=f"user-{number % 1000}",
                input=f"Where is my order {number}? It was due on Friday.",
                output=f"Order {number} shipped yesterday and arrives tomorrow.",
                metadata=metadata,
            )
        )
        if len(batch) == BATCH:
            store.insert_spans(batch).result(timeout=120)
            batch = []
    if batch:
        store.insert_spans(batch).result(timeout=120)
    return replayed, f"conv-{1:07d}-{7919 % 100_003:05d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        store = open_store(f"sqlite:///{Path(directory) / 'replays.db'}")
        try:
            began = time.perf_counter()
            with_replay, without = fill(store, args.sessions)
            print(f"{args.sessions:,} sessions written in {time.perf_counter() - began:.1f} s")

            def scan(session_id: str) -> int:
                query = ListQuery(
                    project="shop",
                    metadata=[(REPLAY_OF, session_id)],
                    sort="start_time",
                    order="asc",
                    limit=21,
                )
                return len(store.list_sessions(query).items)

            def index(session_id: str) -> int:
                return len(store.list_replays("shop", session_id, 21))

            assert scan(with_replay) == index(with_replay) == 1
            assert scan(without) == index(without) == 0
            timings: dict[tuple[str, str], list[float]] = {}
            ways: dict[str, Callable[[str], int]] = {
                "index (list_replays)": index,
                "scan (metadata filter)": scan,
            }
            for _ in range(args.rounds):
                for way, run in ways.items():
                    for case, session_id in (("has a replay", with_replay), ("has none", without)):
                        start = time.perf_counter()
                        run(session_id)
                        timings.setdefault((way, case), []).append((time.perf_counter() - start) * 1000)
        finally:
            store.close()
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {args.rounds} interleaved rounds")
    print(f"{'lookup':<24}{'session':<14}{'min ms':>10}{'median ms':>12}")
    for (way, case), values in timings.items():
        print(f"{way:<24}{case:<14}{min(values):>10.3f}{statistics.median(values):>12.3f}")
    for case in ("has a replay", "has none"):
        ratio = statistics.median(timings[("scan (metadata filter)", case)]) / statistics.median(
            timings[("index (list_replays)", case)]
        )
        print(f"median scan / index ({case}): {ratio:,.0f}x")


if __name__ == "__main__":
    main()
