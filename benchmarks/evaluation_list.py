"""Evaluation list benchmark: paging through every result of a project with
`Store.list_evaluations` (GET /api/evaluations), on SQLite.

The store pages along the evaluations table's primary key (trace id, span id, name, source, key):
each page starts at its cursor, so a page costs the same at the start and at the end of the list.
The alternative it replaced, measured in the same run on the same file: the same rows ordered with
the project first, which SQLite answers by reading the project's every result through
evaluations_by_project and sorting them, for every page.

Data: `--traces` turns of one span each in project "bench" (and as many in "other", so the scoped
reads skip another tenant's rows), each judged by 5 evaluators with a realistic explanation, and
a session result per 5 turns. Distinct random ids.

Run: ``python benchmarks/evaluation_list.py [--traces 20000] [--rounds 3] [--page 1000]``. Prints a
markdown table with min and median seconds of one whole paging, the ratio, and the load average.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from spanloom.server.store.base import SpanRecord, Store
from spanloom.server.store.evaluation_list import EvaluationQuery
from spanloom.server.store.evaluation_types import EvaluationInput
from spanloom.server.store.url import open_store

PROJECTS = ("bench", "other")
EVALUATORS = ("helpful", "grounded", "toxicity", "latency", "relevance")
EXPLANATIONS = (
    "The answer addresses the user's question about the refund and cites the order number.",
    "The reply repeats the policy text without answering what the user asked about shipping.",
    "Grounded in the retrieved documents; no claim goes beyond the knowledge base article.",
    "The response took longer than the two second budget for a first token.",
)
T0 = 1_760_000_000_000_000_000


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def fill(store: Store, traces: int, rng: random.Random) -> int:
    """Spans, then results on them and on their sessions; returns the results of "bench"."""
    results = 0
    for project in PROJECTS:
        ids = [_hex(rng, 32) for _ in range(traces)]
        for start in range(0, traces, 2000):
            spans = [
                SpanRecord(
                    trace_id=trace_id,
                    span_id=_hex(rng, 16),
                    parent_span_id=None,
                    name="turn",
                    project=project,
                    start_time_ns=T0 + (start + index) * 1_000_000_000,
                    end_time_ns=T0 + (start + index) * 1_000_000_000 + 800_000_000,
                    session_id=f"{project}-session-{(start + index) // 5}",
                    user_id=f"user-{(start + index) // 50}",
                    input="Where is my order?",
                    output="It ships tomorrow.",
                )
                for index, trace_id in enumerate(ids[start : start + 2000])
            ]
            store.insert_spans(spans).result(timeout=600)
        items = [
            EvaluationInput(
                name,
                "server",
                trace_id=trace_id,
                score=rng.random(),
                explanation=rng.choice(EXPLANATIONS),
                time_ns=T0 + index,
            )
            for index, trace_id in enumerate(ids)
            for name in EVALUATORS
        ]
        items += [
            EvaluationInput("resolved", "server", session_id=f"{project}-session-{number}", project=project,
                            score=1.0, label="pass")
            for number in range(traces // 5)
        ]  # fmt: skip
        for start in range(0, len(items), 5000):
            result = store.insert_evaluations(items[start : start + 5000]).result(timeout=600)
            assert not result.rejected, result.rejected[:3]
        results += len(items) if project == "bench" else 0
    return results


def page_store(store: Store, page: int) -> int:
    query = EvaluationQuery(project="bench", limit=page)
    count = 0
    while True:
        found = store.list_evaluations(query)
        count += len(found.items)
        if found.next_cursor is None:
            return count
        query = replace(query, cursor=found.next_cursor)


# The alternative: project first in the order, so no index gives it and each page is sorted.
_SORTED = (
    "SELECT e.project, e.trace_id, e.span_id, e.name, e.source, e.result_key, e.score, e.label,"
    " e.explanation, e.time_ns, e.details, t.session_id, t.user_id"
    " FROM evaluations e JOIN traces t ON t.trace_id = e.trace_id AND t.project = e.project"
    " WHERE e.project = ? AND (e.project, e.trace_id, e.span_id, e.name, e.source, e.result_key)"
    " > (?, ?, ?, ?, ?, ?)"
    " ORDER BY e.project, e.trace_id, e.span_id, e.name, e.source, e.result_key LIMIT ?"
)


def page_sorted(path: Path, page: int) -> int:
    """The span and turn results only (the larger part by far), paged the sorted way."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        after = ("bench", "", "", "", "", "")
        count = 0
        while True:
            rows = connection.execute(_SORTED, ("bench", *after, page)).fetchall()
            count += len(rows)
            if len(rows) < page:
                return count
            after = rows[-1][:6]
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--page", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        store = open_store(f"sqlite:///{path}")
        try:
            total = fill(store, args.traces, random.Random(17))
            on_traces = args.traces * len(EVALUATORS)
            timings: dict[str, list[float]] = {"keyset (store)": [], "sorted per page": []}
            for _ in range(args.rounds):  # interleaved: both arms see the same machine load
                began = time.perf_counter()
                assert page_store(store, args.page) == total
                timings["keyset (store)"].append(time.perf_counter() - began)
                began = time.perf_counter()
                assert page_sorted(path, args.page) == on_traces
                timings["sorted per page"].append(time.perf_counter() - began)
        finally:
            store.close()
    print(f"{total:,} results in the project ({on_traces:,} on turns), as many in another;", end=" ")
    print(f"pages of {args.page}")
    print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}\n")
    print("| paging through every result | min s | median s |")
    print("|---|---:|---:|")
    for arm, values in timings.items():
        print(f"| {arm} | {min(values):.3f} | {statistics.median(values):.3f} |")
    keyset, sorted_ = timings["keyset (store)"], timings["sorted per page"]
    medians = statistics.median(sorted_) / statistics.median(keyset)
    print(
        f"\nsorted per page / keyset: {medians:.1f}x (medians), {min(sorted_) / min(keyset):.1f}x"
        " (minimums); the keyset arm also reads the session results"
    )


if __name__ == "__main__":
    main()
