"""Displays: observers that show a run to a person or a program.

They receive the engine's events like any other observer and keep their own ``RunMetrics``; the
engine and the runner never import them. ``make_display`` picks one for a ``--progress`` mode.
"""

from __future__ import annotations

import sys
from typing import IO, Protocol

from ..events import Event

__all__ = ["Display", "make_display", "resolve_mode"]


class Display(Protocol):
    def __call__(self, event: Event) -> None: ...

    def close(self) -> None:
        """Stop any live rendering (safe to call twice)."""


class _Silent:
    def __call__(self, event: Event) -> None:
        pass

    def close(self) -> None:
        pass


def resolve_mode(mode: str, stream: IO[str]) -> str:
    """``auto`` is the rich display on a terminal, plain lines elsewhere (CI, pipes, files)."""
    if mode != "auto":
        return mode
    return "rich" if stream.isatty() else "plain"


def make_display(mode: str, stream: IO[str] | None = None) -> Display:
    stream = stream or sys.stderr
    mode = resolve_mode(mode, stream)
    if mode == "rich":
        from .live import RichDisplay

        return RichDisplay(stream)
    if mode == "plain":
        from .plain import PlainDisplay

        return PlainDisplay(stream)
    if mode == "json":
        from ..eventlog import JsonLinesLog

        return JsonLinesLog(sys.stdout, flush_each=True)
    return _Silent()
