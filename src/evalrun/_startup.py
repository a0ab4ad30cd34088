"""What evalrun's start-up leaves out of other packages' imports.

httpx's ``__init__`` imports its own command line (``httpx._main``) whenever click is installed,
and with it click, rich's console and syntax highlighting, and pygments: 60 ms of every
``evalrun eval`` start-up (measured) as soon as uvicorn, which needs click, is in the same
environment (``evalrun[serve]``). evalrun never runs httpx's command line, so that module is
stood in for until someone calls it; then the real one is imported and run.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["leave_out_httpx_cli"]

_CLI = "httpx._main"


def _real_main(*args: Any, **kwargs: Any) -> Any:
    if isinstance(sys.modules.get(_CLI), _StandIn):
        del sys.modules[_CLI]
    return importlib.import_module(_CLI).main(*args, **kwargs)


class _StandIn(types.ModuleType):
    main = staticmethod(_real_main)


def leave_out_httpx_cli() -> None:
    """Before httpx is first imported: its command line is imported only when it is run."""
    if "httpx" not in sys.modules and _CLI not in sys.modules:
        sys.modules[_CLI] = _StandIn(_CLI)
