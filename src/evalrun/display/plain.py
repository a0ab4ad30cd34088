"""Plain progress lines for CI logs: no ANSI codes, a line every few seconds and at each quarter."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

from ..events import Event, RunFinished, RunStarted, TaskFinished
from ..metrics import RunMetrics, format_eta

__all__ = ["PlainDisplay", "plain_progress", "progress_line"]


def plain_progress(percentage: float, done: int, total: int, unit: str, rate: float, elapsed: float,
                   eta: float | None, state: str) -> str:
    """The head of every plain progress line, eval or test (no rich: CI start-up stays light)."""
    return (f"[{percentage:5.1f}%] {done}/{total} {unit} | {rate:.1f}/s | elapsed {format_eta(elapsed)}"
            f" | ETA {format_eta(eta)} | {state}")


def progress_line(metrics: RunMetrics) -> str:
    overall = metrics.overall
    return (
        plain_progress(metrics.percentage, overall.done, overall.total, "cases", metrics.rate, metrics.elapsed,
                       metrics.eta_seconds, metrics.display_state)
        + f" | pass {overall.passed} fail {overall.failed} error {overall.errors}"
        f" | cache hits {metrics.cache_hits} | retries {metrics.retries} (429: {metrics.rate_limited})"
        f" | in flight {metrics.inflight}/{metrics.limit}"
    )


class PlainDisplay:
    def __init__(self, stream: IO[str], interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = RunMetrics(clock=clock)
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._last_line = 0.0
        self._next_quarter = 1

    def _write(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()
        self._last_line = self._clock()

    def __call__(self, event: Event) -> None:
        metrics = self.metrics
        metrics(event)
        if isinstance(event, RunStarted):
            self._write(f"evalrun: {event.total} tasks on {event.provider} ({', '.join(event.models)}), "
                        f"concurrency {event.concurrency}")
        elif isinstance(event, TaskFinished):
            quarter_due = metrics.percentage >= 25 * self._next_quarter
            if quarter_due:
                self._next_quarter = int(metrics.percentage // 25) + 1
            if quarter_due or self._clock() - self._last_line >= self._interval:
                self._write(progress_line(metrics))
        elif isinstance(event, RunFinished):
            if self._next_quarter <= 4:
                self._write(progress_line(metrics))
            self._write(f"evalrun: {event.state}" + (f": {event.message}" if event.message else ""))

    def close(self) -> None:
        pass
