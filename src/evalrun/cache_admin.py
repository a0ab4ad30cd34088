"""The library side of ``evalrun cache``: the store a run's settings name, and why a case misses.

Not imported by the engine or by ``evalrun.cache`` itself: this is a tool on top of the cache,
which reads suites and settings as a run would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .cache import open_store
from .cache.key import task_key
from .cache.responses import explain
from .cache.store import CacheStore, StoreStats
from .errors import ConfigError
from .plan import Task
from .providers.registry import cache_identity
from .settings import Settings
from .suite import load_suites

__all__ = ["clear_store", "explain_case", "opened_store", "prune_store", "store_stats"]


@asynccontextmanager
async def opened_store(settings: Settings) -> AsyncIterator[CacheStore]:
    store = open_store(settings.cache_dir)
    try:
        yield store
    finally:
        await store.aclose()


async def store_stats(settings: Settings) -> StoreStats:
    async with opened_store(settings) as store:
        return await store.stats()


async def clear_store(settings: Settings) -> int:
    async with opened_store(settings) as store:
        return await store.clear()


async def prune_store(settings: Settings) -> int:
    async with opened_store(settings) as store:
        return await store.prune()


async def explain_case(settings: Settings, case_id: str) -> list[str]:
    """For each model of the settings: whether the case's first repeat hits, and if not, why."""
    cases = {case.id: case for case in load_suites(settings.suite_paths(), settings.default_assert)}
    if case_id not in cases:
        raise ConfigError(f"no case '{case_id}' in {', '.join(settings.suite_paths())}")
    identity = cache_identity(settings.profile())
    lines: list[str] = []
    async with opened_store(settings) as store:
        for model in settings.model_names():
            _, record = task_key(identity, Task(cases[case_id], model, 0), settings.repeat)
            lines += await explain(store, case_id, record)
    return lines
