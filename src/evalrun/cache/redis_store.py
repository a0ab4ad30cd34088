"""``RedisStore``: answers kept in Redis, shared by every runner that names the same URL.

On redis-py's asyncio client, so a lookup never blocks the loop, and one batch is one round trip
(``MGET``; the writes of a batch go in one pipeline of ``SET ... EX``): at 1 ms a round trip a
run is not capped at a thousand lookups a second. Keys sit under a prefix that carries the key
version (``evalrun:k1:<sha256>``), so answers of another key version never collide; values are
the disk store's value, versioned, as compact JSON; the cache TTL is Redis's expiry.

A Redis that goes away mid-run is not the end of the cache: lookups are misses while it is gone,
and answers to keep wait in memory (bounded) until it is back, when they are written and the run
is told. A Redis that cannot be reached when the run starts is the runner's to judge
(``ping``): an error, or with ``--cache-fallback local`` the disk store instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from ..locations import public_url
from ..providers.base import ChatResponse
from .key import KEY_VERSION
from .store import CacheUnavailable, StoredAnswer, StoreStats, one_line

__all__ = ["RedisStore", "ping_now"]

_HELD_MAX = 50_000  # answers kept in memory while Redis is away; beyond, the oldest are not cached
_RETRY_EVERY = 1.0  # seconds between attempts to reach a Redis that went away
#: A round trip longer than this is a Redis that hangs: a run must not wait on it call after call.
_TIMEOUT = 0.5
_SCAN_BATCH = 500


def ping_now(url: str) -> str | None:
    """Why Redis at ``url`` does not answer now, in one line; None when it does (a blocking check,
    made before the run's loop exists)."""
    import redis as blocking

    client = blocking.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        return one_line(exc)
    finally:
        client.close()
    return None


def _encode(answer: StoredAnswer) -> bytes:
    from .disk import _value

    return json.dumps(_value(answer), separators=(",", ":"), ensure_ascii=False).encode()


def _decode(raw: bytes | str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None  # a value another program wrote: a miss


class RedisStore:
    """A ``CacheStore`` in Redis at ``url``; ``warn`` is told when it goes away and comes back."""

    def __init__(self, url: str, warn: Callable[[str], None] = lambda message: None) -> None:
        self.where = public_url(url)
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=_TIMEOUT, socket_timeout=_TIMEOUT)
        self._prefix = f"evalrun:k{KEY_VERSION}:"
        self._warn = warn
        self._away_since: float | None = None
        self._next_try = 0.0
        self._held: list[tuple[str, bytes, float | None]] = []
        self._dropping = False  # whether answers waiting have been dropped since Redis went away

    # -- reaching it ---------------------------------------------------------------------------

    async def ping(self) -> None:
        """``CacheUnavailable`` unless Redis answers now."""
        try:
            await self._client.ping()
        except (redis.exceptions.RedisError, OSError) as exc:
            raise CacheUnavailable(self.where, f"unreachable ({one_line(exc)})") from None

    def _gone(self, exc: Exception) -> None:
        if self._away_since is None:
            self._away_since = time.monotonic()
            self._warn(
                f"cache {self.where}: unreachable ({one_line(exc)}); lookups miss and answers wait to be "
                "written until it is back"
            )
        self._next_try = time.monotonic() + _RETRY_EVERY

    def _down(self) -> bool:
        """Whether to leave Redis alone now: away, and not yet time to try again (one call tries;
        the others miss at once meanwhile, rather than each waiting out a timeout)."""
        if self._away_since is None:
            return False
        if time.monotonic() < self._next_try:
            return True
        self._next_try = time.monotonic() + _RETRY_EVERY  # this caller tries; the rest wait a turn
        return False

    async def _back(self) -> None:
        """Called after a round trip succeeded: what waited is written (kept if that fails), and
        the run is told Redis is back."""
        if self._away_since is None:
            return
        held, self._held = self._held, []
        try:
            await self._write(held)
        except BaseException:
            self._held = held + self._held
            raise
        away, self._away_since, self._dropping = time.monotonic() - self._away_since, None, False
        self._warn(f"cache {self.where}: back after {away:.1f} s; {len(held):,} waiting answers written")

    # -- the protocol --------------------------------------------------------------------------

    async def get_many(self, keys: Sequence[str]) -> list[ChatResponse | None]:
        from .disk import _response

        if not keys or self._down():
            return [None] * len(keys)
        try:
            raws = await self._client.mget([self._prefix + key for key in keys])
            await self._back()
        except (redis.exceptions.RedisError, OSError) as exc:
            self._gone(exc)
            return [None] * len(keys)
        return [_response(_decode(raw)) for raw in raws]

    async def put_many(self, entries: Sequence[tuple[str, StoredAnswer]], ttl: float | None) -> None:
        batch = [(self._prefix + key, _encode(answer), ttl) for key, answer in entries]
        if self._down():
            self._hold(batch)
            return
        try:
            await self._write(batch)
            await self._back()
        except (redis.exceptions.RedisError, OSError) as exc:
            self._gone(exc)
            self._hold(batch)

    def _hold(self, batch: list[tuple[str, bytes, float | None]]) -> None:
        held = self._held + batch
        if len(held) > _HELD_MAX and not self._dropping:
            self._dropping = True  # said once: it goes on until Redis is back
            self._warn(f"cache {self.where}: over {_HELD_MAX:,} answers waiting; the oldest will not be cached")
        self._held = held[-_HELD_MAX:]

    async def _write(self, batch: Sequence[tuple[str, bytes, float | None]]) -> None:
        if not batch:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for key, value, ttl in batch:
                pipe.set(key, value, ex=max(1, int(ttl)) if ttl else None)
            await pipe.execute()

    async def contains(self, key: str) -> bool:
        """Whether a run would find an answer under ``key`` (a value it cannot read is a miss)."""
        from .disk import _response

        try:
            return _response(_decode(await self._client.get(self._prefix + key))) is not None
        except (redis.exceptions.RedisError, OSError) as exc:
            raise CacheUnavailable(self.where, one_line(exc)) from None

    async def _keys(self) -> AsyncIterator[list[bytes]]:
        batch: list[bytes] = []
        async for key in self._client.scan_iter(match=self._prefix + "*", count=_SCAN_BATCH):
            batch.append(key)
            if len(batch) >= _SCAN_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    async def entries(self) -> AsyncIterator[StoredAnswer]:
        from .disk import _stored

        try:
            async for keys in self._keys():
                for raw in await self._client.mget(keys):
                    stored = _stored(_decode(raw))
                    if stored is not None:
                        yield stored
        except (redis.exceptions.RedisError, OSError) as exc:
            raise CacheUnavailable(self.where, one_line(exc)) from None

    async def stats(self) -> StoreStats:
        entries = size = 0
        try:
            async for keys in self._keys():
                async with self._client.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.strlen(key)
                    lengths = await pipe.execute()
                entries, size = entries + len(keys), size + sum(lengths)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise CacheUnavailable(self.where, one_line(exc)) from None
        return StoreStats(self.where, entries, size)

    async def clear(self) -> int:
        removed = 0
        try:
            async for keys in self._keys():
                removed += await self._client.unlink(*keys)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise CacheUnavailable(self.where, one_line(exc)) from None
        return removed

    async def prune(self) -> int:
        """Redis expires answers itself (the TTL); nothing else is kept past its time."""
        return 0

    async def settle(self) -> None:
        if not self._held:
            return
        try:  # a last chance for what waited
            await self._write(self._held)
            self._held = []
        except (redis.exceptions.RedisError, OSError):
            dropped, self._held = len(self._held), []
            self._warn(f"cache {self.where}: still unreachable; {dropped:,} answers were not cached")

    async def aclose(self) -> None:
        await self.settle()
        await self._client.aclose()
