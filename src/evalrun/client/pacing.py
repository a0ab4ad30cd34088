"""Pacing sends: the client's own RPM/TPM buckets, and the server's budgets read from its headers.

No I/O of their own, and an injectable clock, so the arithmetic is tested without sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import anyio

from ..providers.base import Budget, RateLimits

__all__ = ["PACE_SHARE", "ServerPacer", "Ticket", "TokenBucket"]

#: The share of a server's stated budget the pacer uses. The server counts on its own clock, a
#: network away; pacing at exactly the budget would meet it to the microsecond and lose the odd
#: race, and each refused request costs a whole second of ``retry-after``.
PACE_SHARE = 0.98
#: The longest a spent budget without a stated limit holds new sends; calls then find out for
#: themselves, and their 429s are waited out for --rate-limit-wait.
MAX_HOLD = 60.0

Clock = Callable[[], float]


class TokenBucket:
    """``rate_per_minute`` tokens a minute, with a burst of one second's worth (at least 1).

    One second, not one minute: a full minute's burst is what providers refuse (OpenAI enforces a
    per-minute limit over shorter periods), and an even pace costs nothing over a run.
    """

    def __init__(self, rate_per_minute: float, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._rate = max(rate_per_minute, 1e-9) / 60.0
        self.capacity = max(1.0, self._rate)
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = anyio.Lock()
        #: Set when tokens come back or the rate changes, so that the caller sleeping in ``take``
        #: looks again at once. Made by that sleeper: ``anyio.Event()`` needs a running loop.
        self._changed: anyio.Event | None = None

    @property
    def rate_per_minute(self) -> float:
        return self._rate * 60.0

    def set_rate(self, rate_per_minute: float) -> None:
        """A new pace from now on (what was earned at the old one is kept, up to the new burst)."""
        self._refill()
        self._rate = max(rate_per_minute, 1e-9) / 60.0
        self.capacity = max(1.0, self._rate)
        self._tokens = min(self._tokens, self.capacity)
        self._wake()

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
                await self._sleep_unless_changed(delay)
            self._tokens -= amount

    async def _sleep_unless_changed(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if tokens come back or the rate changes meanwhile.

        A token estimate is taken before a call and settled after it: a short answer gives back
        most of what was taken, often while the next caller sleeps off the debt the estimate
        made. Sleeping the whole delay would pace by the estimates, not by what calls cost."""
        self._changed = changed = anyio.Event()  # one sleeper at a time: it holds the lock
        try:
            with anyio.move_on_after(delay):
                await changed.wait()
        finally:
            self._changed = None

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def adjust(self, amount: float) -> None:
        """Give back (negative: take more) once the true cost of a request is known."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens - amount)
        if amount < 0:
            self._wake()

    def at_most(self, remaining: float) -> None:
        """The server says only ``remaining`` are left: never count on more than that."""
        self._refill()
        self._tokens = min(self._tokens, remaining)


class Ticket(NamedTuple):
    """What had been sent before a request, and its own cost: its response's budgets are read net
    of what followed."""

    requests: int
    tokens: float
    cost: float = 0.0


class ServerPacer:
    """Sends at the pace a server's rate headers state, so a run keeps inside its key's budget.

    Every response's budgets update one bucket per kind (requests, tokens): its rate is the
    stated limit per minute, and what the server says is left caps what the bucket holds, so a
    budget shared with other clients is seen as it is. Servers state what is left as a whole
    number counted when the request arrived, a latency ago: an answer's count is read as "less
    than one more than that", a refusal's as exact. An answer's count is also net of what was sent
    after its request (the ``Ticket`` says) and is still unanswered; a refusal is immediate, so
    its count stands as it is. Before the first response nothing is known and nothing is held
    back. A budget that says it is spent without a limit to pace by holds new sends until its
    reset.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.requests: TokenBucket | None = None
        self.tokens: TokenBucket | None = None
        #: The budgets per minute as the server last stated them (the buckets run a little below).
        self.stated: dict[str, float] = {}
        self._hold_until = 0.0
        self._sent = Ticket(0, 0.0)  # requests and tokens sent so far
        self.unanswered = 0  # requests sent and not yet answered (see ``answered``)

    def observe(self, limits: RateLimits, ticket: Ticket, refused: bool = False, delay: float | None = None) -> bool:
        """Take in the budgets of the response to the request sent with ``ticket`` (``refused``: a
        429, which waits ``delay``); True when a pace was set or changed."""
        since = self._since(ticket) if not refused else Ticket(0, 0.0)
        changed = False
        for kind in ("requests", "tokens"):
            budget: Budget | None = getattr(limits, kind)
            if budget is not None:
                changed |= self._pace(kind, budget)
                self._cap(kind, budget, getattr(since, kind), refused, delay)
        return changed

    def _pace(self, kind: str, budget: Budget) -> bool:
        """The bucket of ``kind`` at the stated limit; True when its pace was set or changed."""
        if budget.limit is None or budget.limit <= 0:
            return False
        pace, self.stated[kind] = budget.limit * PACE_SHARE, budget.limit
        bucket: TokenBucket | None = getattr(self, kind)
        if bucket is None:
            setattr(self, kind, TokenBucket(pace, self._clock))
            return True
        if math.isclose(bucket.rate_per_minute, pace, rel_tol=0.01):
            return False
        bucket.set_rate(pace)
        return True

    def _cap(self, kind: str, budget: Budget, sent_since: float, refused: bool, delay: float | None) -> None:
        """What is left of the budget caps its bucket; spent, without a bucket, it holds sends."""
        if budget.remaining is None:
            return
        bucket: TokenBucket | None = getattr(self, kind)
        if bucket is not None:
            left = budget.remaining - sent_since
            bucket.at_most(left if refused else left + 1)
        elif budget.remaining <= 0:  # spent, and no limit to pace by: wait for the reset
            wait = budget.reset if budget.reset is not None else delay
            if wait is not None:  # capped: a daily budget's reset must not hold a run for hours
                self._hold_until = max(self._hold_until, self._clock() + min(wait, MAX_HOLD))

    def hold_remaining(self) -> float:
        """Seconds new sends are still held by a spent budget that names no limit (0: none)."""
        return max(0.0, self._hold_until - self._clock())

    async def wait(self, tokens: float) -> Ticket:
        """Wait until the server's budgets allow one more request of about ``tokens`` tokens; the
        ticket to hand back with its response."""
        hold = self.hold_remaining()
        if hold > 0:
            await anyio.sleep(hold)
        if self.requests is not None:
            await self.requests.take(1)
        if self.tokens is not None:
            await self.tokens.take(tokens)
        return self.sending(tokens)

    def _since(self, ticket: Ticket) -> Ticket:
        """What was sent after ``ticket``'s request and is still unanswered: the server had not
        counted it when it stated what is left (the rest of what followed was answered, refused or
        not, and no longer matters)."""
        after = self._sent.requests - ticket.requests - 1
        if after <= 0:
            return Ticket(0, 0.0)
        pending = min(after, self.unanswered)
        return Ticket(pending, (self._sent.tokens - ticket.tokens - ticket.cost) * pending / after)

    def answered(self) -> None:
        """A request sent with ``sending`` got its response, whatever it was (or failed for good)."""
        self.unanswered -= 1

    def sending(self, tokens: float) -> Ticket:
        """Count a request of about ``tokens`` tokens as sent; its ticket."""
        before = self._sent
        self._sent = Ticket(before.requests + 1, before.tokens + tokens)
        self.unanswered += 1
        return Ticket(before.requests, before.tokens, tokens)

    def settle(self, estimated: float, actual: float) -> None:
        """A request used ``actual`` tokens where ``estimated`` were taken for it."""
        if self.tokens is not None:
            self.tokens.adjust(actual - estimated)
