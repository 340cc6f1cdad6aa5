"""Dashboard render times on a server filled with the ingest benchmark's data.

Run: ``python benchmarks/pages.py [--spans 100000]``. Fills a fresh server with the spans of
``benchmarks/ingest.py`` (the demo's shapes: agent, tool and LLM spans with flattened messages;
sessions sized so that they have about 30 turns each), then requests each page repeatedly and
prints the median and p95 time the server spent on it, measured inside the server process by a
thin ASGI wrapper (from the request's arrival to the last byte of the response), so HTTP client
overhead is left out. Filtered lists (``q=``, ``user_id=``, ``tag=``, ``model=``) use values the
data holds (a word of a stored question, a user with sessions, tags every turn's root carries:
one or two of a handful, as apps tag their traces), and the project overview is timed with its
charts over its default range and over seven days. Target: under 100 ms median for each at
100,000 spans. The last row is
the navigation's project list, which pages cache for a few seconds: its cost is paid by one
request per interval, so it is shown on its own rather than hidden in the medians.

The store's text search indexer works behind ingest (searches read the texts of what it has not
reached): the pages are timed once it has caught up, and how long that took after the last span
was acknowledged is printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import build_payloads, send_all  # the ingest benchmark's data, byte for byte

from spanloom.server.app import create_app
from spanloom.server.settings import Settings
from spanloom.server.store.sqlite import SqliteStore
from spanloom.server.web.projects import TTL_SECONDS

TURNS = 30
# Tags as an app sets them: each turn's root carries one or two of these.
TAGS = ("checkout", "refund", "shipping", "mobile", "web", "beta", "returning", "vip")


def with_tags(payloads: list[bytes]) -> list[bytes]:
    """The payloads with `tag.tags` on every root span, chosen from the trace id (deterministic)."""
    tagged = []
    for payload in payloads:
        request = ExportTraceServiceRequest.FromString(payload)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if span.parent_span_id:
                        continue
                    chosen = random.Random(span.trace_id).sample(TAGS, 1 + span.trace_id[0] % 2)
                    values = ArrayValue(values=[AnyValue(string_value=tag) for tag in chosen])
                    span.attributes.append(KeyValue(key="tag.tags", value=AnyValue(array_value=values)))
        tagged.append(request.SerializeToString())
    return tagged


class ServerTimer:
    """ASGI middleware: the server-side duration of every request, by path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.durations: dict[str, list[float]] = defaultdict(list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        query = scope.get("query_string", b"").decode()
        target = f"{scope['path']}?{query}" if query else scope["path"]

        async def timed_send(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.durations[target].append((time.perf_counter() - start) * 1000)

        await self.app(scope, receive, timed_send)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def unindexed(store: SqliteStore) -> int:
    # A store without a background indexer (one that indexes on ingest, or none) has no backlog.
    return getattr(store.stats(), "unindexed_traces", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=30, help="requests per page (after 3 warm-ups)")
    args = parser.parse_args()
    sessions = max(1, args.spans // (3 * TURNS))  # three spans per turn
    payloads = with_tags(build_payloads(args.spans, sessions, args.users)[0])
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "pages.db"
        store = SqliteStore(db)
        timer = ServerTimer(create_app(Settings(db_path=db), store))
        server = uvicorn.Server(uvicorn.Config(timer, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, 30, "the server to start")
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        try:
            send_all(f"{base}/v1/traces", payloads)
            ingested = time.perf_counter()
            backlog = unindexed(store)
            wait_until(lambda: unindexed(store) == 0, 1800, "the text indexer to catch up")
            catch_up = time.perf_counter() - ingested
            with httpx.Client(base_url=base, timeout=60) as client:
                items = client.get("/api/sessions", params={"limit": 1000}).json()["items"]
                session = min(items, key=lambda item: abs(item["trace_count"] - TURNS))
                turns = session["trace_count"]
                user = client.get("/api/users", params={"sort": "sessions", "limit": 1}).json()["items"][0]
                # A word of a stored question, as a user would search for it.
                word = quote(max((session["first_input"] or "nothing").split(), key=len).strip("?.,"))
                pages = {
                    "/sessions": "/sessions",
                    f"/sessions/{{id}} ({turns} turns)": (
                        f"/sessions/{session['session_id']}?project={session['project']}"
                    ),
                    "/users": "/users",
                    "/users?sort=errors&order=desc": "/users?sort=errors&order=desc",
                    "/traces": "/traces",
                    "/sessions?project=shop (with its trend strip)": "/sessions?project=shop",
                    "/sessions?q={word}": f"/sessions?q={word}",
                    "/sessions?user_id={id}": f"/sessions?user_id={user['user_id']}",
                    "/sessions?tag=refund": "/sessions?tag=refund",
                    "/traces?q={word}": f"/traces?q={word}",
                    "/traces?user_id={id}": f"/traces?user_id={user['user_id']}",
                    "/traces?tag=refund": "/traces?tag=refund",
                    "/traces?model=gpt-4o": "/traces?model=gpt-4o",
                    "/users?q={id}": f"/users?q={user['user_id']}",
                    "/projects/shop (overview, 6 charts)": "/projects/shop",
                    "/projects/shop?range=7d (overview, daily)": "/projects/shop?range=7d",
                }
                for path in pages.values():
                    for _ in range(3 + args.repeat):
                        response = client.get(path)
                        assert response.status_code == 200, (path, response.status_code)
            # The navigation's project list is cached for a few seconds (server/web/projects.py);
            # the request that refreshes it pays this on top of its page.
            projects_ms = []
            for _ in range(5):
                start = time.perf_counter()
                store.list_projects()
                projects_ms.append((time.perf_counter() - start) * 1000)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            store.close()
    print(f"{args.spans:,} spans, {sessions:,} sessions, {args.users} users; {args.repeat} requests per page")
    print(
        f"text indexer: {backlog:,} traces waiting when ingest ended, caught up {catch_up:.2f} s after it\n"
    )
    print("| page | min | median | p95 | target |")
    print("|---|---|---|---|---|")
    for label, path in pages.items():
        durations = sorted(timer.durations[path][3:])  # without the warm-ups
        p95 = durations[min(len(durations) - 1, int(len(durations) * 0.95))]
        median = statistics.median(durations)
        print(f"| {label} | {durations[0]:.1f} ms | {median:.1f} ms | {p95:.1f} ms | < 100 ms |")
    refresh = f"project list refresh (once per {TTL_SECONDS:.0f} s, any page)"
    print(
        f"| {refresh} | {min(projects_ms):.1f} ms | {statistics.median(projects_ms):.1f} ms"
        f" | {max(projects_ms):.1f} ms (max) | |"
    )


if __name__ == "__main__":
    main()
