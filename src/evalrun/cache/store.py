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

__all__ = ["CacheStore", "CacheUnavailable", "StoreStats", "StoredAnswer"]


class CacheUnavailable(Exception):
    """A store that cannot be used, at open or later: ``str()`` is ``WHERE: reason``, one line.

    ``damaged`` says the store's own files are corrupt, so that removing them (``evalrun cache
    clear``) repairs it; a full disk, a read-only folder or a path that is a file are not. ``busy``
    says another process holds it (a lock, a timeout): it works, and must never be removed."""

    def __init__(self, where: str, reason: str, *, damaged: bool = False, busy: bool = False) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason
        self.damaged = damaged
        self.busy = busy

    @classmethod
    def of(cls, where: str, exc: Exception) -> CacheUnavailable:
        """Any failure of the store at ``where`` as this; one the store did not name says its type."""
        if isinstance(exc, CacheUnavailable):
            return exc
        name, line = type(exc).__name__, one_line(exc)
        return cls(where, line if line == name else f"{name}: {line}")

    @property
    def warning(self) -> str:
        """What a run says when it goes on without this store."""
        return f"cache {self}; the run goes on without it"


def one_line(exc: BaseException) -> str:
    """An error's message as one line for a warning: never a traceback, never a blank."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


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
    """Where answers are kept. Every method is a batch or a maintenance task, never one call a key.

    A store raises ``CacheUnavailable`` when where it keeps answers fails (a value it cannot decode
    is not a failure but a miss); ``ResponseCache`` also survives whatever else a store raises."""

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

    async def stats(self) -> StoreStats:
        """Entries and size; ``CacheUnavailable`` (damaged) when the store finds itself corrupt."""
        ...

    async def clear(self) -> int:
        """Remove everything; the number of entries removed."""
        ...

    async def prune(self) -> int:
        """Remove what has expired or is over the size limit; the number removed."""
        ...

    async def settle(self) -> None:
        """Write what was held back (a network store that was away) or say what could not be: the
        run's last word on its cache, before it reports, so the warning reaches results.json."""
        ...

    async def aclose(self) -> None: ...
