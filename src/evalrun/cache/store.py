"""The seam between the response cache and where answers are kept.

A store keeps answers under keys, in batches, without making the event loop wait long: the disk
store's batches are short SQLite transactions in WAL mode (readers never wait), run inline; a
network store would pipeline its round trips so that one batch costs one round trip. The engine never
sees a store; it sees ``ResponseCache``, which decides what to read and write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..providers.base import ChatResponse

__all__ = ["CacheStore", "StoreStats", "StoredAnswer"]


@dataclass(frozen=True)
class StoredAnswer:
    """An answer as kept: with the key record it was stored under, for ``cache explain``."""

    record: Mapping[str, Any]
    response: ChatResponse
    case_id: str
    stored_at: float


@dataclass(frozen=True)
class StoreStats:
    where: str
    entries: int
    bytes: int


class CacheStore(Protocol):
    """Where answers are kept. Every method is a batch or a maintenance task, never one call a key."""

    where: str  # a path or URL, for messages

    async def get_many(self, keys: Sequence[str]) -> list[ChatResponse | None]:
        """The answers under ``keys``, in order; None where there is none (or it expired)."""
        ...

    async def put_many(self, entries: Sequence[tuple[str, StoredAnswer]], ttl: float | None) -> None:
        """Keep every entry, expiring after ``ttl`` seconds when given."""
        ...

    async def contains(self, key: str) -> bool: ...

    def entries(self) -> AsyncIterator[StoredAnswer]:
        """Every answer kept (for inspection, not for runs)."""
        ...

    async def stats(self) -> StoreStats: ...

    async def clear(self) -> int:
        """Remove everything; the number of entries removed."""
        ...

    async def prune(self) -> int:
        """Remove what has expired or is over the size limit; the number removed."""
        ...

    async def aclose(self) -> None: ...
