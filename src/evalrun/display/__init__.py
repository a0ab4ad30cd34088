"""Displays: observers that show a run to a person or a program.

They receive a run's events like any other observer and keep their own view of it (an eval run's
``RunMetrics``, a test run's ``TestProgress``); the engine and the runners never import them.
``make_display`` picks one for a ``--progress`` mode and a kind of run.
"""

from __future__ import annotations

import importlib
import sys
from typing import IO, Protocol

from ..events import Event
from ..schema import RunKind

__all__ = ["Display", "make_display", "resolve_mode"]


class Display(Protocol):
    def __call__(self, event: Event) -> None: ...

    def close(self) -> None:
        """Stop any live rendering (safe to call twice)."""
        ...


class _Silent:
    """``--progress none``."""

    def __call__(self, event: Event) -> None:
        pass

    def close(self) -> None:
        pass


def resolve_mode(mode: str, stream: IO[str]) -> str:
    """``auto`` is the rich display on a terminal, plain lines elsewhere (CI, pipes, files)."""
    if mode != "auto":
        return mode
    return "rich" if stream.isatty() else "plain"


#: (mode, kind) -> (module, class), imported only when chosen: rich is not loaded for plain output.
_DISPLAYS = {
    ("rich", RunKind.EVAL): ("eval_live", "RichEvalDisplay"),
    ("plain", RunKind.EVAL): ("eval_plain", "PlainEvalDisplay"),
    ("rich", RunKind.TEST): ("tests_live", "RichTestDisplay"),
    ("plain", RunKind.TEST): ("tests_plain", "PlainTestDisplay"),
}


def make_display(mode: str, kind: RunKind, stream: IO[str] | None = None) -> Display:
    """The display of a run of ``kind`` for a ``--progress`` mode (``json`` writes to stdout)."""
    stream = stream or sys.stderr
    mode = resolve_mode(mode, stream)
    if mode == "json":
        from ..eventlog import JsonLinesLog

        return JsonLinesLog(sys.stdout, flush_each=True)
    if (mode, kind) not in _DISPLAYS:
        return _Silent()
    module, name = _DISPLAYS[mode, kind]
    display: Display = getattr(importlib.import_module(f".{module}", __name__), name)(stream)
    return display
