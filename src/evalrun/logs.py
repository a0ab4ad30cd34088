"""evalrun's standard logging: a program that embeds it sees what the system it replaces showed in
its debug logs, through ``logging.getLogger("evalrun")``.

Events become log records (an observer like any other): cache hits and misses, retries with their
reasons, concurrency and pace changes at DEBUG; a run's start and end at INFO; what the run
survived (``RunWarning``) at WARNING. The runner logs its stages' timings itself. Nothing is
configured here unless asked (``log_to_stderr``, what ``--log-level`` does): a library leaves
handlers to its host. An event costs one level check when the level is above DEBUG.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from .events import (
    CacheHit,
    ConcurrencyChanged,
    Event,
    PaceChanged,
    RetryScheduled,
    RunFinished,
    RunStarted,
    RunWarning,
    TaskStarted,
)
from .progress import counted

__all__ = ["LEVELS", "LogObserver", "log_to_stderr", "logger"]

logger = logging.getLogger("evalrun")
logger.addHandler(logging.NullHandler())  # the host's to show; not Python's last resort on stderr
LEVELS = ("debug", "info", "warning", "error")


class LogObserver:
    """The events of a run as log records on the ``evalrun`` logger: a dict lookup an event, and
    a level check for those logged at DEBUG."""

    def __call__(self, event: Event) -> None:
        write = _RECORDS.get(type(event))
        if write is not None:
            write(event)


def _run_started(event: RunStarted) -> None:
    logger.info("run %s started: %s on %s", event.run_id, counted(event.total, "task"), event.provider or event.kind)


def _run_finished(event: RunFinished) -> None:
    why = f": {event.message}" if event.message else ""
    logger.info("run ended: %s%s (exit %d)", event.state, why, event.exit_code)


def _debug(message: str, *fields: str) -> Callable[[Any], None]:
    def write(event: Any) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(message, *(getattr(event, name) for name in fields))

    return write


_RECORDS: dict[type, Callable[[Any], None]] = {
    RunWarning: lambda event: logger.warning("%s", event.message),
    RunStarted: _run_started,
    RunFinished: _run_finished,
    CacheHit: _debug("cache hit: %s (%s, repeat %d)", "case_id", "model", "repeat"),
    TaskStarted: _debug("call: %s (%s, repeat %d)", "case_id", "model", "repeat"),
    RetryScheduled: _debug("retry %d of %s in %.2f s: %s", "attempt", "case_id", "delay", "reason"),
    ConcurrencyChanged: _debug("concurrency limit %d: %s", "limit", "reason"),
    PaceChanged: _debug("pace: %s requests, %s tokens a minute", "requests_per_minute", "tokens_per_minute"),
}


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is when a record comes: the live display takes
    stderr over while it runs and prints what is written there above itself, so records never
    tear its lines apart."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def log_to_stderr(level: str) -> None:
    """Show evalrun's records at ``level`` and above on stderr (never on stdout, where
    ``--progress json`` writes); called again, it changes the level, not the handler."""
    if not any(getattr(handler, "_evalrun_stderr", False) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        handler._evalrun_stderr = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level.upper())
