"""The response cache: keys, the store seam, the stores, and the cache a run reads and writes.

Stores are imported only when opened, so the engine, which speaks to ``ResponseCache``, never
loads one (nor SQLite).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from .key import KEY_VERSION, cache_key, key_record, task_key
from .responses import ResponseCache, explain
from .store import CacheStore, StoredAnswer, StoreStats

if TYPE_CHECKING:
    from .disk import DiskStore

__all__ = [
    "KEY_VERSION",
    "CacheStore",
    "DiskStore",
    "ResponseCache",
    "StoreStats",
    "StoredAnswer",
    "cache_key",
    "explain",
    "key_record",
    "open_store",
    "task_key",
]


def open_store(location: str) -> CacheStore:
    """The store at ``location``: the one factory of stores (a folder, today)."""
    from .disk import DiskStore

    return DiskStore(location)


__getattr__ = lazy_exports(__name__, {"DiskStore": "disk"})
