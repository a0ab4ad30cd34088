"""The simulated OpenAI-compatible provider used by the demo, ``bench`` and the tests.

Imported lazily: settings only need ``SimConfig``, and must not pay for asyncio and httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .config import SimConfig
    from .process import SimProcess, serve
    from .server import SimServer

__all__ = ["SimConfig", "SimProcess", "SimServer", "serve"]
__getattr__ = lazy_exports(
    __name__, {"SimProcess": "process", "serve": "process", "SimConfig": "config", "SimServer": "server"}
)
