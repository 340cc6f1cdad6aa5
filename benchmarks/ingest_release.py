"""The last release's ingest against this tree's, in the same run: the projects issue asks that
ingest "still shows the figures of the last release", and the only fair comparison is the same
payloads, on the same machine, at the same moment.

Run: ``python benchmarks/ingest_release.py [--spans 100000] [--rounds 3] [--release REV]``. The
release is checked out from this repository's history into a temporary work tree (``git worktree``)
and its server runs from there, on this environment's packages. Each round starts a fresh server
per side over a new SQLite file, the two in alternating order, and sends the same payloads
(benchmarks/ingest.py's: realistic turns of two projects sharing session ids) from two senders.
Prints per side the sustained rate and the server's CPU per span (min / median over the rounds),
that CPU split by thread (the writer, the decoding workers, the event loop, the rest, and this
tree's decoding processes), and the
floor (decoding the same payloads and inserting plain rows into SQLite).

The split by thread needs the server's threads named where the OS sees them (CPython does not do
it): the benchmark starts each server through a wrapper that names each thread after its Python
name, so this script runs on Linux only (/proc and prctl), as ingest.py does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import ingest  # benchmarks/, beside this script

# 0.1.0, the last release: the tree before sessions and users were keyed by project.
RELEASE = "ca7f5362e0a65a7688cec6c8008c056ea8b56570"
REPOSITORY = Path(__file__).resolve().parents[1]

# Runs `spanloom.cli` after giving every thread started from then on its Python name in the OS
# (Linux keeps 15 bytes), so /proc tells the writer from the decoding workers.
_NAMED_THREADS = """
import ctypes, runpy, sys, threading
_prctl = ctypes.CDLL(None).prctl
_start = threading.Thread._bootstrap_inner
def _named(thread):
    _prctl(15, thread.name.removeprefix("spanloom-").encode()[:15], 0, 0, 0)
    return _start(thread)
threading.Thread._bootstrap_inner = _named
sys.argv[0] = "spanloom"
runpy.run_module("spanloom.cli", run_name="__main__")
"""


@dataclass
class Side:
    name: str
    source: Path  # the package's src/ folder
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    threads: list[Counter[str]] = field(default_factory=list)  # µs per span by thread group


def thread_group(name: str) -> str:
    if "writer" in name:
        return "writer"
    if name.startswith("AnyIO worker"):
        return "decoding workers"
    if name in ("python", "spanloom"):
        return "event loop"
    return "other threads"


class ThreadClock:
    """CPU seconds of each of a process's threads, sampled until `stop` (threads are started
    during ingest, and a thread's figures go when it ends: the last sample of each is kept)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.first = self._sample()
        self.last = dict(self.first)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> dict[str, tuple[str, float]]:
        found = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            task = Path(f"/proc/{self.pid}/task/{tid}")
            try:
                found[tid] = ((task / "comm").read_text().strip(), ingest.stat_cpu_seconds(task / "stat"))
            except OSError:
                continue  # the thread ended between the listing and the reads
        return found

    def _run(self) -> None:
        while not self._stopping.wait(0.25):
            self.last.update(self._sample())

    def stop(self) -> Counter[str]:
        """CPU seconds by thread group since the start."""
        self._stopping.set()
        self._thread.join()
        self.last.update(self._sample())
        groups: Counter[str] = Counter()
        for tid, (name, seconds) in self.last.items():
            groups[thread_group(name)] += seconds - self.first.get(tid, (name, 0.0))[1]
        return groups


def start_server(side: Side, db: Path) -> tuple[subprocess.Popen, str]:
    port = ingest.free_port()
    # cli.py in the release, a cli/ package since.
    cli = "".join(path.read_text() for path in (side.source / "spanloom").glob("cli*") if path.is_file())
    cli += "".join(path.read_text() for path in (side.source / "spanloom" / "cli").glob("*.py"))
    # The release took a file (--db); stores named by URL (--store) came with the projects issue.
    store = ["--store", f"sqlite:///{db}"] if '"--store"' in cli else ["--db", str(db)]
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _NAMED_THREADS,
            "serve",
            "--port",
            str(port),
            *store,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(side.source)},
    )
    base = f"http://127.0.0.1:{port}"
    ingest.wait_until_serving(server, base)
    return server, base


def run_round(side: Side, payloads: list[bytes], spans: int, db: Path) -> None:
    server, base = start_server(side, db)
    try:
        clock = ThreadClock(server.pid)
        start, cpu_before = time.perf_counter(), ingest.cpu_seconds(server.pid)
        ingest.send_all(f"{base}/v1/traces", payloads)
        elapsed = time.perf_counter() - start
        cpu = ingest.cpu_seconds(server.pid) - cpu_before
        groups = clock.stop()
        stored = sum(project["span_count"] for project in httpx.get(f"{base}/api/projects").json()["items"])
        assert stored == spans, (side.name, stored)
    finally:
        server.terminate()
        server.wait(timeout=60)
    side.rates.append(spans / elapsed)
    side.cpu_us.append(cpu / spans * 1e6)
    split = Counter({group: seconds / spans * 1e6 for group, seconds in groups.items()})
    # The server's decoding processes (this tree's): what the whole tree used beyond its threads.
    beyond = (cpu - sum(groups.values())) / spans * 1e6
    if beyond > 1:
        split["decoding processes"] = beyond
    side.threads.append(split)
    print(
        f"{side.name}: {spans / elapsed:,.0f} spans/s, {cpu / spans * 1e6:.0f} µs CPU/span", file=sys.stderr
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--release", default=RELEASE, help="the revision to compare with (default: 0.1.0)")
    args = parser.parse_args()
    sessions = max(1, args.spans // 3 // 60)
    payloads, *_ = ingest.build_payloads(args.spans, sessions, max(1, sessions // 10))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "release"
        subprocess.run(
            ["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", "--quiet", str(tree), args.release],
            check=True,
        )
        try:
            sides = [Side("release", tree / "src"), Side("this tree", REPOSITORY / "src")]
            for number in range(args.rounds):
                for side in sides if number % 2 == 0 else sides[::-1]:
                    run_round(side, payloads, args.spans, Path(tmp) / f"{side.name[:4]}-{number}.db")
            floor = ingest.floor_spans_per_second(payloads, Path(tmp))
        finally:
            subprocess.run(
                ["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(tree)], check=False
            )
    release, current = sides
    print(
        f"{args.spans:,} spans, release {args.release[:10]}, {args.rounds} rounds in alternating order,"
        f" {os.cpu_count()} CPUs, load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}\n"
    )
    print("| measure | release | this tree | this tree / release |")
    print("|---|---|---|---|")

    def row(label: str, values: tuple[list[float], list[float]], unit: str, digits: int = 0) -> None:
        low = [f"{min(v):,.{digits}f} / {statistics.median(v):,.{digits}f} {unit}" for v in values]
        release_median = statistics.median(values[0])
        ratio = f"{statistics.median(values[1]) / release_median:.2f}x" if release_median else "-"
        print(f"| {label} (min / median) | {low[0]} | {low[1]} | {ratio} |")

    row("sustained ingest", (release.rates, current.rates), "spans/s")
    row("server CPU per span", (release.cpu_us, current.cpu_us), "µs")
    for group in ("writer", "decoding workers", "event loop", "other threads", "decoding processes"):
        values = ([t[group] for t in release.threads], [t[group] for t in current.threads])
        row(f"  of which the {group}", values, "µs")
    shares = [f"{floor / statistics.median(side.rates):.2f}x" for side in sides]
    print(
        f"| floor ({floor:,.0f} spans/s: decode + plain SQLite rows) / median rate | {' | '.join(shares)} | |"
    )


if __name__ == "__main__":
    main()
