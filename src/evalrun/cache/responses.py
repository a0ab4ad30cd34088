"""The response cache as a run uses it: what to read, what to keep, and when to write.

``mode`` is ``on`` (read and write), ``refresh`` (write only) or ``off`` (neither). Only complete,
non-empty answers are kept. Writes are queued and go to the store in one batch every 50 ms, or as
soon as 256 are waiting, from a task of the cache's own; on the way out, whatever way the run ended,
every answer received is written.

The cache is an accelerator, never a reason to lose a run: when the store fails (a full disk, a
corrupt file), ``warn`` is told once and the cache goes on as ``off``. Nothing the engine calls
raises for a store's fault.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio

from ..providers.base import ChatResponse
from .key import cache_key
from .store import CacheStore, CacheUnavailable, StoredAnswer

__all__ = ["ResponseCache", "explain"]
_FLUSH_SECONDS = 0.05
_BATCH = 256


def _ignore(message: str) -> None:
    """The default ``warn``: the caller wants no word of a failing store."""


class ResponseCache:
    def __init__(
        self,
        store: CacheStore | None,
        mode: str = "on",
        ttl: float | None = None,
        *,
        warn: Callable[[str], None] = _ignore,
    ) -> None:
        """``warn`` is told, in one line naming the store, when the store fails and the run goes on
        without it; at most once."""
        self._store = store if mode != "off" else None
        self._reads = mode == "on"
        self._ttl = ttl
        self._warn = warn
        self._pending: list[tuple[str, StoredAnswer]] = []
        self._full = anyio.Event()

    def _give_up(self, exc: Exception) -> None:
        """From now on, the cache is off: no store fault may cost a run its answers."""
        if self._store is None:  # a lookup and a write failed together: one warning is enough
            return
        where, self._store, self._pending = self._store.where, None, []
        self._warn(CacheUnavailable.of(where, exc).warning)

    @property
    def active(self) -> bool:
        """Whether answers are read or kept at all (with ``off``, no key is ever needed)."""
        return self._store is not None

    async def lookup_many(self, keys: Sequence[str]) -> list[ChatResponse | None]:
        """The cached answers for ``keys`` (all None when the cache is not read)."""
        if self._store is None or not self._reads:
            return [None] * len(keys)
        try:
            return await self._store.get_many(keys)
        except Exception as exc:  # whatever a store raises: it is an accelerator, not the run
            self._give_up(exc)
            return [None] * len(keys)

    def keep(self, key: str, record: Mapping[str, Any], response: ChatResponse, case_id: str) -> None:
        """Queue a complete answer for the next write; empty answers are never kept."""
        if self._store is None or not response.text.strip():
            return
        self._pending.append((key, StoredAnswer(record, response, case_id, time.time())))
        if len(self._pending) >= _BATCH:
            self._full.set()

    async def flush(self) -> None:
        """Write what is queued, in one batch. A batch cancelled on its way stays queued (the last,
        shielded flush writes it); one the store failed to take is dropped with the cache."""
        pending, self._pending = self._pending, []
        if not pending or self._store is None:
            return
        try:
            await self._store.put_many(pending, self._ttl)
        except Exception as exc:
            self._give_up(exc)
        except BaseException:
            self._pending[:0] = pending
            raise

    async def settle(self) -> None:
        """Write what is queued, and what the store held back: before the run reports, so that a
        store that cannot take it is told of in the results."""
        await self.flush()
        if self._store is None:
            return
        try:
            await self._store.settle()
        except Exception as exc:
            self._give_up(exc)

    async def _flush_every(self, seconds: float) -> None:
        while True:
            with anyio.move_on_after(seconds):
                await self._full.wait()
            self._full = anyio.Event()
            with anyio.CancelScope(shield=True):  # a batch on its way to the store gets there
                await self.flush()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[ResponseCache]:
        """The cache, with its writer running; every queued answer is written on the way out.

        An error of the body leaves as itself, not wrapped in the writer's task group (the CLI turns
        an ``OSError`` into one line and exit code 2)."""
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._flush_every, _FLUSH_SECONDS)
                try:
                    yield self
                except Exception as exc:
                    failure = exc
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.flush()
        if failure is not None:
            raise failure


async def explain(store: CacheStore, case_id: str, record: Mapping[str, Any]) -> list[str]:
    """Say whether ``record`` hits, and if not, what differs from the newest entry of the case."""
    key = cache_key(record)
    if await store.contains(key):
        return [f"hit: {case_id} is cached under {key[:16]}…"]
    newest: StoredAnswer | None = None
    async for answer in store.entries():
        if answer.case_id == case_id and (newest is None or answer.stored_at > newest.stored_at):
            newest = answer
    if newest is None:
        return [f"miss: {case_id} has never been cached (key {key[:16]}…)"]
    changes = _diff(dict(newest.record), dict(record))
    return [f"miss: {case_id} was cached with a different key; what changed since:", *changes]


def _diff(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                changes.append(f"{where}: added {_short(new[key])}")
            elif key not in new:
                changes.append(f"{where}: removed (was {_short(old[key])})")
            else:
                changes.extend(_diff(old[key], new[key], where))
        return changes
    if old != new:
        return [f"{path}: {_short(old)} -> {_short(new)}"]
    return []


def _short(value: Any) -> str:
    return json.dumps(value)[:80]
