"""``evalrun serve``: the HTTP API over runs (FastAPI, on uvicorn), imported only by that command.

``app`` maps paths to the work; ``bodies`` turns request bodies into settings with the loader the
command line uses; ``sessions`` keeps the runs this server started.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__all__ = ["ServerConfig", "create_app"]

__getattr__ = lazy_exports(__name__, {"ServerConfig": "app", "create_app": "app"})
