"""Runs as web pages: the self-contained HTML report and the dashboard's pages (``render.py``)."""

from __future__ import annotations

from .._lazy import lazy_exports

__all__ = ["render_page", "render_report"]

__getattr__ = lazy_exports(__name__, {"render_page": "render", "render_report": "render"})
