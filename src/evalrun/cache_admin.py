"""The library side of ``evalrun cache``: the store a run's settings name, and why a case misses.

Not imported by the engine or by ``evalrun.cache`` itself: this is a tool on top of the cache,
which reads suites and settings as a run would. A store that cannot be used raises
``CacheUnavailable`` from every function here; ``clear_store`` repairs it when it can.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from .cache import CacheUnavailable, discard_store, open_store
from .cache.key import task_key
from .cache.responses import explain
from .cache.store import CacheStore, StoreStats
from .errors import ConfigError
from .plan import Task
from .providers.registry import cache_identity
from .settings import Settings
from .suite import load_suites

__all__ = ["Cleared", "clear_store", "explain_case", "opened_store", "prune_store", "store_stats"]


@dataclass(frozen=True)
class Cleared:
    """What ``clear_store`` did: the entries it removed, or the fault that made it remove the
    store's files instead (their entries uncounted: a damaged store cannot count them)."""

    entries: int
    repaired: CacheUnavailable | None = None


def cache_location(settings: Settings) -> str:
    """Where the settings keep answers: the Redis URL when they name one, else the folder."""
    return settings.cache_url or settings.cache_dir


@asynccontextmanager
async def opened_store(settings: Settings) -> AsyncIterator[CacheStore]:
    store = open_store(cache_location(settings))
    try:
        yield store
    finally:
        await store.aclose()


def _nothing_kept(settings: Settings) -> bool:
    """A cache folder that is not there yet holds nothing, and looking must not make it."""
    return not settings.cache_url and not os.path.exists(settings.cache_dir)


async def store_stats(settings: Settings) -> StoreStats:
    if _nothing_kept(settings):
        return StoreStats(settings.cache_dir, 0, 0)
    async with opened_store(settings) as store:
        return await store.stats()


async def clear_store(settings: Settings) -> Cleared:
    """Empty the store; one that cannot be cleared (damaged, full) has its files removed, and an
    empty store is opened in their place, so that what is left is a working cache. One that is
    busy (locked by another run) is left alone."""
    if _nothing_kept(settings):
        return Cleared(0)
    try:
        async with opened_store(settings) as store:
            return Cleared(await store.clear())
    except CacheUnavailable as fault:
        if fault.busy:  # in use by another run: its files are sound, and removing them would break it
            raise
        if settings.cache_url:  # a Redis that refused to be cleared is not files to remove
            raise
        discard_store(settings.cache_dir)
        async with opened_store(settings):
            return Cleared(0, repaired=fault)


async def prune_store(settings: Settings) -> int:
    if _nothing_kept(settings):
        return 0
    async with opened_store(settings) as store:
        return await store.prune()


async def explain_case(settings: Settings, case_id: str) -> list[str]:
    """For each model of the settings: whether the case's first repeat hits, and if not, why."""
    cases = {case.id: case for case in load_suites(settings.suite_paths(), settings.default_assert)}
    if case_id not in cases:
        raise ConfigError(f"no case '{case_id}' in {', '.join(settings.suite_paths())}")
    if _nothing_kept(settings):
        return [f"miss: {case_id} has never been cached (there is no cache at {settings.cache_dir} yet)"]
    identity = cache_identity(settings.profile())
    lines: list[str] = []
    async with opened_store(settings) as store:
        for model in settings.model_names():
            _, record = task_key(identity, Task(cases[case_id], model, 0), settings.repeat)
            lines += await explain(store, case_id, record)
    return lines
