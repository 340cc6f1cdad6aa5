"""Wrong keys per client address: past a limit within a window, that address is turned away.

A key may be a short passphrase an admin typed (SPANLOOM_API_KEY): without a limit, the login
form and the ``Authorization`` header would let anyone try keys as fast as the server answers.
After `limit` wrong keys from one address within `window_seconds`, every request from it that
presents a key is answered 429 (with Retry-After) without the key being checked, until its
oldest counted failure is older than the window. Requests that present no key are not
counted: they guess nothing.

Refusing with 429, not 401, keeps a legitimate exporter behind the same address (a NAT, a
proxy) retrying instead of dropping its spans while the address is held back. Memory is bounded:
past `max_addresses` the address with the oldest failure is forgotten.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class FailedKeyThrottle:
    def __init__(
        self,
        limit: int = 30,
        window_seconds: float = 60.0,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_addresses = max_addresses
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may present a key again, or None if it may now."""
        if self.limit <= 0:
            return None
        with self._lock:
            failures = self._failures.get(address)
            if failures is None or len(failures) < self.limit:
                return None
            wait = failures[0] + self.window_seconds - self._clock()
            if wait <= 0:
                failures.popleft()
                return None
            return max(1, math.ceil(wait))

    def failed(self, address: str) -> None:
        """Count one wrong key from `address`."""
        if self.limit <= 0:
            return
        now = self._clock()
        with self._lock:
            failures = self._failures.pop(address, None)  # re-inserted last: dict order is recency
            if failures is None:
                failures = deque(maxlen=self.limit)
                if len(self._failures) >= self.max_addresses:
                    del self._failures[next(iter(self._failures))]
            failures.append(now)
            self._failures[address] = failures
