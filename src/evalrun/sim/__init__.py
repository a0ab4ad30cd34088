"""The simulated OpenAI-compatible provider used by the demo, ``bench`` and the tests.

Imported lazily: settings only need ``SimConfig``, and must not pay for asyncio and httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import SimConfig
    from .process import SimProcess, serve
    from .server import SimServer

__all__ = ["SimConfig", "SimProcess", "SimServer", "serve"]
_HOMES = {"SimProcess": "process", "serve": "process", "SimConfig": "config", "SimServer": "server"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'evalrun.sim' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
