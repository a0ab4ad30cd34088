"""Progress, computed one way for every run: percentage, rate, ETA, and the callback dict.

``RunMetrics`` (eval) and ``TestProgress`` (test) count different things, but how far a run is,
how fast it goes and when it will end are the same arithmetic, done here. ``Throttle`` is the one
way a progress callback is paced, whatever kind of run it watches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .events import Event, RunFinished, RunStarted
from .schema import ProgressCounts, ProgressDict

__all__ = ["Figures", "Throttle", "clipped", "counted", "figures", "format_eta", "percentage", "progress_dict"]


def counted(count: int, noun: str) -> str:
    """``1 task``, ``2 tasks``: a count with its noun, in the number it takes."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def clipped(text: str, limit: int) -> str:
    """``text`` on one line (its whitespace runs made one space), cut to ``limit`` with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def format_eta(seconds: float | None) -> str:
    """``HH:MM:SS``, or ``--:--:--`` while the rate is unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--:--:--"
    seconds = round(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass(frozen=True)
class Figures:
    """Where a run stands: ``done`` of ``total``, since ``elapsed`` seconds."""

    done: int
    total: int
    elapsed: float
    rate: float  # items a second
    eta: float | None  # seconds; None while there is no rate to go by
    percentage: float


def figures(done: int, total: int, elapsed: float, working: float, finished: bool) -> Figures:
    """The figures of a run: ``working`` is the time the items took (the rate's denominator).

    A finished run has no ETA left, and a finished run of nothing is 100 % done.
    """
    rate = done / working if working > 0 else 0.0
    remaining = total - done
    if finished or remaining <= 0:
        eta: float | None = 0.0
    else:
        eta = remaining / rate if rate > 0 else None
    return Figures(done, total, elapsed, rate, eta, percentage(done, total, finished))


def percentage(done: int, total: int, finished: bool) -> float:
    """How far a run is: a finished run of nothing is 100 % done, an unfinished one 0 %."""
    return 100.0 * min(done, total) / total if total else 100.0 if finished else 0.0


def progress_dict(state: str, message: str, current: Figures, counts: ProgressCounts) -> ProgressDict:
    """The documented progress dict: the common keys, then a run kind's own ``counts``."""
    return {
        "status": state,
        "progress_percentage": round(current.percentage, 2),
        "completed": current.done,
        "total": current.total,
        "message": message,
        "eta_seconds": current.eta,
        "eta_formatted": format_eta(current.eta),
        "elapsed_seconds": round(current.elapsed, 3),
        **counts,
    }


class Throttle:
    """An observer calling ``callback(snapshot())`` at most every ``interval`` seconds.

    The first and last events of a run always get through, so a callback sees the start and the end.
    """

    def __init__(
        self,
        snapshot: Callable[[], ProgressDict],
        callback: Callable[[ProgressDict], Any],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshot, self._callback, self._interval, self._clock = snapshot, callback, interval, clock
        self._last = float("-inf")

    def __call__(self, event: Event) -> None:
        now = self._clock()
        if isinstance(event, (RunStarted, RunFinished)) or now - self._last >= self._interval:
            self._last = now
            self._callback(self._snapshot())
