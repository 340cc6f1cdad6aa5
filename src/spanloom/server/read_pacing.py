"""Big reads give way to ingest: while spans are arriving, a read that has used CPU pauses three
times as long.

The server is one process: every thread runs Python under one lock (the GIL). A client reading a
big trace page after page keeps a thread building JSON, and the threads of ingest (decoding the
next request; the writer, which hands the lock back at every SQLite call and waits to win it back)
get a smaller share: one such reader cost ingest a third of its rate. So the big reads (a trace's
spans, streamed in chunks) report the CPU time each piece of work took, and while ingest has been
busy within the last `window_seconds`, they sleep for a multiple of it (`READ_SHARE`: the share of
its thread's time a read keeps), up to `max_pause`. A read sleeping as long as it worked (half its
time) still cost ingest 24-28% of its rate in `benchmarks/ingest.py --with-readers`; at a quarter,
18%. Reads run at full speed otherwise. Small reads (lists, a session's page of turns) are not
paced: their latency is what a dashboard user waits for.

`ingest_busy()` is called by ingest for each request (both transports); `yield_to_ingest(cpu)` by
the readers. Both are cheap: a monotonic clock read and a comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# How long after the last ingest request the readers still give way: senders export in bursts a
# few hundred milliseconds apart, and ingest is "busy" across those gaps.
WINDOW_SECONDS = 1.0
# While ingest is busy, a big read keeps this share of its thread's time: it pauses (1 / share - 1)
# times as long as each piece of work took, and never longer than MAX_PAUSE_SECONDS at once, so no
# read waits long for one piece.
READ_SHARE = 0.25
MAX_PAUSE_SECONDS = 0.15


class ReadPacing:
    def __init__(
        self,
        window_seconds: float = WINDOW_SECONDS,
        max_pause_seconds: float = MAX_PAUSE_SECONDS,
        read_share: float = READ_SHARE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._window = window_seconds
        self._max_pause = max_pause_seconds
        self._pause_per_work = 1 / read_share - 1
        self._clock = clock
        self._sleep = sleep
        self._last_ingest = float("-inf")

    def ingest_busy(self) -> None:
        """An ingest request is being handled now."""
        self._last_ingest = self._clock()

    def ingesting(self) -> bool:
        return self._clock() - self._last_ingest <= self._window

    def yield_to_ingest(self, cpu_seconds: float) -> float:
        """After a piece of a big read that used `cpu_seconds`: when ingest is busy, pause for the
        read's share (up to the maximum), releasing the GIL to it. Returns the pause, in seconds."""
        if cpu_seconds <= 0 or not self.ingesting():
            return 0.0
        pause = min(cpu_seconds * self._pause_per_work, self._max_pause)
        self._sleep(pause)
        return pause
