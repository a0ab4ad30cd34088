"""The response cache: keys, the store seam, the stores, and the cache a run reads and writes.

Stores are imported only when opened, so the engine, which speaks to ``ResponseCache``, never
loads one (nor SQLite).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ..locations import is_redis_url
from .key import KEY_VERSION, cache_key, key_record, task_key
from .responses import ResponseCache, explain
from .store import CacheStore, CacheUnavailable, StoredAnswer, StoreStats

if TYPE_CHECKING:
    from .disk import DiskStore

__all__ = [
    "KEY_VERSION",
    "CacheStore",
    "CacheUnavailable",
    "DiskStore",
    "ResponseCache",
    "StoreStats",
    "StoredAnswer",
    "cache_key",
    "discard_store",
    "explain",
    "key_record",
    "open_store",
    "task_key",
]


def open_store(location: str, warn: Callable[[str], None] | None = None) -> CacheStore:
    """The store at ``location``: the one factory of stores (a folder, or a ``redis://`` URL,
    whose store tells ``warn`` when Redis goes away mid-run and when it is back).

    Any failure to open a usable store is ``CacheUnavailable``, so that a run can go on without it."""
    from .disk import DiskStore

    if is_redis_url(location):
        from .redis_store import RedisStore

        return RedisStore(location, warn or (lambda message: None))
    try:
        return DiskStore(location)
    except CacheUnavailable:
        raise
    except Exception as exc:  # a damaged database can make diskcache fail in ways it does not name
        raise CacheUnavailable.of(location, exc) from exc


def discard_store(location: str) -> None:
    """Remove the files of the store at ``location`` (damaged, say), so that ``open_store`` makes a new,
    empty one; nothing else there is touched. ``CacheUnavailable`` when they cannot be removed."""
    from .disk import remove_files

    remove_files(location)


__getattr__ = lazy_exports(__name__, {"DiskStore": "disk"})
