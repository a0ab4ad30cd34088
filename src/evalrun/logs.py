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

__all__ = ["LEVELS", "LogObserver", "log_to_stderr", "logger"]

logger = logging.getLogger("evalrun")
logger.addHandler(logging.NullHandler())  # the host's to show; not Python's last resort on stderr
LEVELS = ("debug", "info", "warning", "error")


class LogObserver:
    """The events of a run as log records on the ``evalrun`` logger."""

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunWarning):
            logger.warning("%s", event.message)
        elif isinstance(event, RunStarted):
            logger.info("run %s started: %d tasks on %s", event.run_id, event.total, event.provider or event.kind)
        elif isinstance(event, RunFinished):
            why = f": {event.message}" if event.message else ""
            logger.info("run ended: %s%s (exit %d)", event.state, why, event.exit_code)
        elif logger.isEnabledFor(logging.DEBUG):
            self._debug(event)

    def _debug(self, event: Event) -> None:
        if isinstance(event, CacheHit):
            logger.debug("cache hit: %s (%s, repeat %d)", event.case_id, event.model, event.repeat)
        elif isinstance(event, TaskStarted):
            logger.debug("call: %s (%s, repeat %d)", event.case_id, event.model, event.repeat)
        elif isinstance(event, RetryScheduled):
            logger.debug("retry %d of %s in %.2f s: %s", event.attempt, event.case_id, event.delay, event.reason)
        elif isinstance(event, ConcurrencyChanged):
            logger.debug("concurrency limit %d: %s", event.limit, event.reason)
        elif isinstance(event, PaceChanged):
            logger.debug("pace: %s requests, %s tokens a minute", event.requests_per_minute, event.tokens_per_minute)


def log_to_stderr(level: str) -> None:
    """Show evalrun's records at ``level`` and above on stderr (never on stdout, where
    ``--progress json`` writes)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
