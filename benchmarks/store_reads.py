"""Read latencies of one or more existing stores, through the Store protocol (no HTTP), in
interleaved rounds: the lists and the session read that benchmarks/ingest.py times over HTTP, so a
change to a store's reads can be timed in seconds on a store built once.

Run: ``python benchmarks/store_reads.py --store chdb:///tmp/x/ch [--store sqlite:////tmp/x/s.db]
[--rounds 5]``. The stores should hold benchmarks/ingest.py's data (two projects "shop" and
"support" with the same session ids): the session ids are read from the first store's list.
Each round times every read once on every store in turn (20 calls each, distinct session ids and
users); prints per read and store the min and median over all calls, and the ratio of the medians
to the first store's, with the load average before and after.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import time
from collections.abc import Callable

from spanloom.server.store.base import ListQuery, Store
from spanloom.server.store.url import open_store

PROJECTS = ("shop", "support")
CALLS = 20


def _ids(store: Store) -> tuple[list[str], list[str]]:
    """20 session ids and 20 user ids spread over the first project's lists."""
    sessions = [s.session_id for s in store.list_sessions(ListQuery(project=PROJECTS[0], limit=1000)).items]
    users = [u.user_id for u in store.list_users(ListQuery(project=PROJECTS[0], limit=1000)).items]
    return sessions[:: max(1, len(sessions) // CALLS)][:CALLS], users[:: max(1, len(users) // CALLS)][:CALLS]


def _no_tool_calls(store: Store) -> dict[str, bool]:
    """tool_calls=False where the store takes it (a checkout from before it reads them always)."""
    return {"tool_calls": False} if "tool_calls" in inspect.signature(store.get_session).parameters else {}


def reads(sessions: list[str], users: list[str]) -> dict[str, Callable[[Store, int], object]]:
    return {
        "sessions, default sort": lambda store, i: store.list_sessions(ListQuery()),
        "sessions, user_id=": lambda store, i: store.list_sessions(ListQuery(user_id=users[i % len(users)])),
        "sessions, sort=cost": lambda store, i: store.list_sessions(ListQuery(sort="cost")),
        # As GET /api/sessions/{id} reads it (its JSON has no tool spans), and as the page does.
        "one session (the API's read)": lambda store, i: store.get_session(
            PROJECTS[i % 2], sessions[i % len(sessions)], 100, **_no_tool_calls(store)
        ),
        "one session with its tool spans (the page's)": lambda store, i: store.get_session(
            PROJECTS[i % 2], sessions[i % len(sessions)], 100
        ),
        "users": lambda store, i: store.list_users(ListQuery()),
        "projects": lambda store, i: store.list_projects(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", action="append", required=True, metavar="URL")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=CALLS, help="calls per read, store and round")
    parser.add_argument("--skip", action="append", default=[], metavar="TEXT", help="skip reads naming TEXT")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    stores = [open_store(url) for url in args.store]
    try:
        sessions, users = _ids(stores[0])
        named = {
            name: read
            for name, read in reads(sessions, users).items()
            if not any(text in name for text in args.skip)
        }
        for store in stores:  # warm-up: each read once
            for read in named.values():
                read(store, 0)
        times: dict[tuple[str, int], list[float]] = {
            (name, s): [] for name in named for s in range(len(stores))
        }
        for _ in range(args.rounds):
            for name, read in named.items():
                for s, store in enumerate(stores):
                    for i in range(args.calls):
                        start = time.perf_counter()
                        read(store, i)
                        times[(name, s)].append((time.perf_counter() - start) * 1000)
    finally:
        for store in stores:
            store.close()
    print(
        f"{args.rounds} rounds x {args.calls} calls per read and store; load average before"
        f" {load_before:.2f},"
        f" after {os.getloadavg()[0]:.2f}\n"
    )
    print(f"| read (min / median ms) | {' | '.join(args.store)} |")
    print(f"|---|{'---|' * len(stores)}")
    for name in named:
        first = statistics.median(times[(name, 0)])
        cells = []
        for s in range(len(stores)):
            values = times[(name, s)]
            median = statistics.median(values)
            ratio = f" ({median / first:.2f}x)" if s else ""
            cells.append(f"{min(values):.1f} / {median:.1f}{ratio}")
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
