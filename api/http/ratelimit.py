"""A per-key token bucket for searches: `per_minute` a minute, in bursts of up to as many.

Hand-written rather than a dependency: it is twenty lines, in memory, for one process, and a
search's cost (decode, inference, re-rank) is what it protects, not the network.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable


class RateLimiter:
    """`take(key)` spends one token of that key's bucket; it answers 0 or the seconds until one is back."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at); one per key name, never more

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def take(self, key: str) -> int:
        """0 if the key may go ahead (a token is spent), else whole seconds to wait (at least 1)."""
        if not self.enabled:
            return 0
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.refill_per_s)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.refill_per_s))
