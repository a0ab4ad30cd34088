"""The simulated provider as a kind of provider: evalrun's own server, started for the run.

It speaks the OpenAI dialect from a child process on loopback (see ``evalrun.sim``). Its answers
do not depend on the port it happens to get, so its cache identity is a fixed URL; and, seeing its
server, it can say what that server served.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio

from ..sim.config import SimConfig
from .base import ClientOptions, Provider
from .openai import DIALECT
from .profiles import ProviderProfile

__all__ = ["CACHE_URL", "OWN_PROFILE_KEYS", "check_options", "identity", "open_provider"]

BASE_URL_REQUIRED = False
OWN_PROFILE_KEYS = frozenset({"rpm", "tpm"})  # the simulated key's budget
CACHE_URL = "sim://evalrun"


def check_options(options: Mapping[str, Any]) -> None:
    SimConfig().update(options)


def identity(profile: ProviderProfile) -> dict[str, str]:
    return {"name": profile.name, "base_url": CACHE_URL}


@asynccontextmanager
async def open_provider(
    profile: ProviderProfile, api_key: str | None, options: ClientOptions
) -> AsyncIterator[Provider]:
    from ..sim.process import SimProcess  # httpx and subprocess: only when a run starts one
    from .http import HttpProvider

    config = SimConfig()
    config.update(profile.options)
    process = SimProcess(config)
    await anyio.to_thread.run_sync(process.start)  # waits for the child's first line off the event loop
    try:

        async def served() -> dict[str, Any]:
            stats: dict[str, Any] = await anyio.to_thread.run_sync(process.stats)
            return stats

        provider = HttpProvider(DIALECT, identity(profile), process.base_url, None, options, served)
        try:
            yield provider
        finally:
            await provider.aclose()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(process.stop)
