"""Client-side pacing: RPM/TPM token buckets, and AIMD concurrency on 429s.

Both are engine-side policies with no I/O of their own; they are driven by an injectable clock so
their arithmetic can be tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

__all__ = ["AimdController", "TokenBucket"]


class TokenBucket:
    """``rate_per_minute`` tokens a minute, with a burst of one second's worth (at least 1)."""

    def __init__(self, rate_per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_minute / 60.0
        self.capacity = max(1.0, self._rate)
        self._tokens = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = anyio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def wait_time(self, amount: float) -> float:
        """Seconds until ``amount`` tokens are there (0 when they are)."""
        self._refill()
        needed = min(amount, self.capacity) - self._tokens
        return max(0.0, needed / self._rate)

    async def take(self, amount: float = 1.0) -> None:
        """Wait until ``amount`` tokens can be taken, then take them (callers queue in order)."""
        async with self._lock:
            while (delay := self.wait_time(amount)) > 0:
                await anyio.sleep(delay)
            self._tokens -= amount

    def adjust(self, amount: float) -> None:
        """Give back (negative: take more) once the true cost of a request is known."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens - amount)


class AimdController:
    """Additive increase, multiplicative decrease of a concurrency limit.

    A 429 halves the limit, at most once per ``cooldown`` seconds so that a burst of 429s from one
    overload counts once; every ``limit`` successes in a row add one, never above ``ceiling``.
    """

    def __init__(self, ceiling: int, cooldown: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = ceiling
        self.limit = ceiling
        self._cooldown = cooldown
        self._clock = clock
        self._last_decrease = float("-inf")
        self._successes = 0

    def on_rate_limited(self) -> bool:
        """Record a 429; return True when the limit changed."""
        now = self._clock()
        self._successes = 0
        if self.limit <= 1 or now - self._last_decrease < self._cooldown:
            return False
        self.limit = max(1, self.limit // 2)
        self._last_decrease = now
        return True

    def on_success(self) -> bool:
        """Record a success; return True when the limit changed."""
        if self.limit >= self.ceiling:
            return False
        self._successes += 1
        if self._successes < self.limit:
            return False
        self._successes = 0
        self.limit += 1
        return True
