"""Typed events: the only thing the engine tells the outside world.

Displays, the ``--events`` log, library callbacks and the metrics behind the summary are all
observers of these. The engine imports no display code, and a new observer needs no engine change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .results import CaseResult

__all__ = [
    "CacheHit",
    "ConcurrencyChanged",
    "Event",
    "Observer",
    "RetryScheduled",
    "RunFinished",
    "RunStarted",
    "TaskFinished",
    "TaskStarted",
]


def _now() -> float:
    return time.monotonic()


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    provider: str
    models: tuple[str, ...]
    total: int
    concurrency: int
    categories: dict[str, int]
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class _TaskEvent:
    case_id: str
    category: str
    model: str
    repeat: int
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class TaskStarted(_TaskEvent):
    """A cache miss took a slot and is about to call the provider."""


@dataclass(frozen=True)
class CacheHit(_TaskEvent):
    """A task answered from the cache, without a slot or a call."""


@dataclass(frozen=True)
class RetryScheduled:
    case_id: str
    model: str
    attempt: int
    delay: float
    reason: str
    status: int | None
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class ConcurrencyChanged:
    limit: int
    reason: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class TaskFinished:
    result: CaseResult
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class RunFinished:
    """``state`` is completed, timeout or interrupted; tasks that never ran were reported as not_run."""

    state: str
    message: str = ""
    at: float = field(default_factory=_now)


Event = RunStarted | TaskStarted | CacheHit | RetryScheduled | ConcurrencyChanged | TaskFinished | RunFinished
Observer = Callable[[Event], Any]


def event_name(event: Event) -> str:
    """The stable snake_case name of an event, as written to ``--events`` logs."""
    return _NAMES[type(event)]


_NAMES: dict[type, str] = {
    RunStarted: "run_started",
    TaskStarted: "task_started",
    CacheHit: "cache_hit",
    RetryScheduled: "retry_scheduled",
    ConcurrencyChanged: "concurrency_changed",
    TaskFinished: "task_finished",
    RunFinished: "run_finished",
}
