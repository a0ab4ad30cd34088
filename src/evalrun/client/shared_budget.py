"""A provider key's rate budget kept in Redis, so that N runners on N machines stay under it together.

Why an atomic Lua script rather than a library such as ``limits``: ``limits`` answers "may I, now?"
(moving or fixed windows), and a caller told "no" must poll; what a run needs is "when may I?",
so that each call waits exactly its turn and the calls of every runner are spaced evenly. The
script is a token bucket that lends: each call takes its token at once, the bucket may go into
debt, and the call sleeps the debt's worth of time. Refill and take are one atomic step, on
Redis's clock (``TIME``), so machines whose clocks differ still share one pace. The bucket holds
one token at most: a burst could put a window over the key's budget, an even pace never does.

A call takes an estimate of its tokens, and its true cost is known only once it is answered
(an answer of five tokens where 260 were taken, say). The difference goes to Redis with the
runner's next take, in the same step (no round trip of its own), so the calls after it, of every
runner, are no longer paced by estimates; and this runner's own calls asleep in the queue move up
by it at once, as they would had the estimate been right.

A Redis that cannot be reached mid-run does not stop the run: calls pace on a local bucket at
the same rate (this runner's share is not known then, so it is the whole rate) until Redis
answers again, and the run is told both times.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import anyio
import redis.asyncio as aioredis
import redis.exceptions

from .pacing import TokenBucket

__all__ = ["SharedBucket", "SharedBudget"]

#: Refill, take (into debt if need be) and say how long the taker must wait: one atomic step.
#: ``amount`` is net of what the runner's calls gave back since its last take, so it may be
#: negative. The bucket holds its capacity (1) at most, before the take (an idle bucket lends no
#: burst) and after it (a give-back pays debts, and at most fills the bucket: it never makes a
#: burst). The first cap alone would cut an over-full bucket at the next take, so no wait depends
#: on the second; it keeps what is stored true meanwhile, for whoever reads it.
_TAKE = """
local rate = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local kept = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(kept[1]) or 1
local stamp = tonumber(kept[2]) or now
tokens = math.min(1, math.min(1, tokens + math.max(0, now - stamp) * rate) - amount)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""

_SAFETY = 0.99  # the shared pace runs a hair under the budget: clocks and latencies are not exact
_RETRY_EVERY = 1.0  # seconds between attempts to reach a Redis that went away
_TIMEOUT = 0.5  # a Redis slower than this is one that hangs: calls pace locally rather than wait on it


class SharedBucket:
    """One budget (requests or tokens a minute) of one key, in Redis; ``take`` as ``TokenBucket``'s."""

    def __init__(self, budget: SharedBudget, kind: str, rate_per_minute: float) -> None:
        self._budget, self._key = budget, f"{budget.prefix}:{kind}"
        self._rate = rate_per_minute * _SAFETY / 60
        self._local = TokenBucket(rate_per_minute * _SAFETY)
        self._owed = 0.0  # settled estimates not yet sent to Redis (negative: given back)
        self._given_back = 0.0  # net of all settled so far: how far this runner's sleepers move up
        self._changed: anyio.Event | None = None  # set when tokens come back (made by a sleeper)
        self._taken_locally = 0  # calls paced on the local bucket while Redis was away, not yet settled

    @property
    def rate_per_minute(self) -> float:
        return self._rate * 60 / _SAFETY

    def set_rate(self, rate_per_minute: float) -> None:
        self._rate = rate_per_minute * _SAFETY / 60
        self._local.set_rate(rate_per_minute * _SAFETY)

    async def take(self, amount: float = 1.0) -> None:
        """Wait this call's turn in the budget every runner shares (a local one while Redis is away)."""
        # Taken out before the round trip, so that a take meanwhile does not send it again.
        owed, self._owed = self._owed, 0.0
        given_back = self._given_back
        wait = await self._budget.take(self._key, self._rate, amount + owed)
        if wait is None:
            self._owed += owed  # Redis never saw it: it goes with a take once Redis is back
            self._taken_locally += 1
            await self._local.take(amount)
        elif wait > 0:
            await self._sleep(wait, given_back)

    async def _sleep(self, wait: float, given_back: float) -> None:
        """Sleep ``wait`` seconds, less what this runner has given back since (``given_back`` then).

        The wait is this call's place behind the debt in Redis. A call answered since, of this
        runner, gave back part of that debt: every call queued behind it comes that much sooner
        (Redis hears of it with the next take; other runners' sleepers do not, which only makes
        them late). What was given back counts at the shared pace, as the debt does."""
        until = time.monotonic() + wait
        while (left := until - (self._given_back - given_back) / self._rate - time.monotonic()) > 0:
            if self._changed is None:
                self._changed = anyio.Event()
            with anyio.move_on_after(left):
                await self._changed.wait()

    def adjust(self, amount: float) -> None:
        """A token estimate settled (negative: given back), where it was taken: Redis hears of it
        with the next take. A call paced on the local bucket while Redis was away settles there
        (calls settle in about the order they were taken), even once Redis is back: Redis never
        took its estimate, and a give-back would shrink every runner's debt by tokens it never
        owed. While Redis is away, the local bucket is what paces, and a settlement is its."""
        if self._taken_locally or self._budget.away:
            self._taken_locally = max(0, self._taken_locally - 1)
            self._local.adjust(amount)
            return
        self._owed += amount
        self._given_back -= amount
        if amount < 0 and self._changed is not None:
            self._changed.set()
            self._changed = None


class SharedBudget:
    """The budgets of one provider key in Redis at ``url``; the key is named by a hash of the base
    URL and the API key (never the key itself)."""

    def __init__(self, url: str, base_url: str, secret: str | None, warn: Callable[[str], None]) -> None:
        from ..locations import public_url

        self.where = public_url(url)
        identity = hashlib.sha256(f"{base_url}\n{secret or ''}".encode()).hexdigest()[:20]
        self.prefix = f"evalrun:budget:{identity}"
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=_TIMEOUT, socket_timeout=_TIMEOUT)
        self._script: Any = self._client.register_script(_TAKE)
        self._warn = warn
        self._away_since: float | None = None
        self._next_try = 0.0

    @property
    def away(self) -> bool:
        """Whether Redis is out of reach (calls pace on local buckets until it answers again)."""
        return self._away_since is not None

    def bucket(self, kind: str, rate_per_minute: float) -> SharedBucket:
        return SharedBucket(self, kind, rate_per_minute)

    async def take(self, key: str, rate: float, amount: float) -> float | None:
        """Seconds to wait for ``amount`` of the budget at ``key``; None while Redis is away."""
        if self._away_since is not None:
            if time.monotonic() < self._next_try:
                return None
            self._next_try = time.monotonic() + _RETRY_EVERY  # this call tries; the rest pace locally meanwhile
        try:
            wait = float(await self._script(keys=[key], args=[rate, amount]))
        except (redis.exceptions.RedisError, OSError, ValueError) as exc:
            if self._away_since is None:
                self._away_since = time.monotonic()
                self._warn(f"rate budget {self.where}: unreachable ({exc}); this runner paces alone until it is back")
            self._next_try = time.monotonic() + _RETRY_EVERY
            return None
        if self._away_since is not None:
            away, self._away_since = time.monotonic() - self._away_since, None
            self._warn(f"rate budget {self.where}: back after {away:.1f} s; the budget is shared again")
        return wait

    async def aclose(self) -> None:
        await self._client.aclose()
