"""Displays: observers that show a run to a person or a program.

They receive the engine's events like any other observer and keep their own ``RunMetrics``; the
engine and the runner never import them. ``make_display`` picks one for a ``--progress`` mode.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, Protocol

from ..events import Event

if TYPE_CHECKING:
    from ..testrun.progress import TestProgress

__all__ = ["Display", "TestDisplay", "make_display", "make_test_display", "resolve_mode"]


class Display(Protocol):
    def __call__(self, event: Event) -> None: ...

    def close(self) -> None:
        """Stop any live rendering (safe to call twice)."""


class _Silent:
    """``--progress none``, for eval and test runs alike."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
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


def make_test_display(mode: str, stream: IO[str] | None = None) -> TestDisplay:
    """The display of an ``evalrun test`` run for a ``--progress`` mode."""
    stream = stream or sys.stderr
    mode = resolve_mode(mode, stream)
    if mode == "rich":
        from .test_live import RichTestDisplay

        return RichTestDisplay(stream)
    if mode == "plain":
        from .test_plain import PlainTestDisplay

        return PlainTestDisplay(stream)
    if mode == "json":
        from ..testrun.runner import EventLines

        return EventLines(sys.stdout, flush_each=True)
    return _Silent()


class TestDisplay(Protocol):
    def __call__(self, progress: TestProgress, event: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...
