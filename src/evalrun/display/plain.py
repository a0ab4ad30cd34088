"""Plain progress lines for CI logs: no ANSI codes, a line every few seconds and at each quarter."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

from ..events import Event, RunFinished, RunStarted, TaskFinished
from ..metrics import RunMetrics, format_eta

__all__ = ["PlainDisplay", "PlainLines", "plain_progress", "progress_line"]


def plain_progress(
    percentage: float, done: int, total: int, unit: str, rate: float, elapsed: float, eta: float | None, state: str
) -> str:
    """The head of every plain progress line, eval or test (no rich: CI start-up stays light)."""
    return (
        f"[{percentage:5.1f}%] {done}/{total} {unit} | {rate:.1f}/s | elapsed {format_eta(elapsed)}"
        f" | ETA {format_eta(eta)} | {state}"
    )


def progress_line(metrics: RunMetrics) -> str:
    overall = metrics.overall
    return (
        plain_progress(
            metrics.percentage,
            overall.done,
            overall.total,
            "cases",
            metrics.rate,
            metrics.elapsed,
            metrics.eta_seconds,
            metrics.display_state,
        )
        + f" | pass {overall.passed} fail {overall.failed} error {overall.errors}"
        f" | cache hits {metrics.cache_hits} | retries {metrics.retries} (429: {metrics.rate_limited})"
        f" | in flight {metrics.inflight}/{metrics.limit}"
    )


class PlainLines:
    """Lines to a stream at a CI-friendly cadence: every ``interval`` seconds and at each quarter."""

    def __init__(self, stream: IO[str], interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream, self._interval, self._clock = stream, interval, clock
        self._last_line = clock()
        self._next_quarter = 1

    def write(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()
        self._last_line = self._clock()

    def due(self, percentage: float) -> bool:
        """Whether a progress line is due now, at ``percentage`` done."""
        if percentage >= 25 * self._next_quarter:
            self._next_quarter = int(percentage // 25) + 1
            return True
        return self._clock() - self._last_line >= self._interval

    @property
    def ended_on_a_line(self) -> bool:
        """Whether the 100 % line has been written already."""
        return self._next_quarter > 4

    def close(self) -> None:
        pass


class PlainDisplay(PlainLines):
    def __init__(self, stream: IO[str], interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream, interval, clock)
        self.metrics = RunMetrics(clock=clock)

    def __call__(self, event: Event) -> None:
        metrics = self.metrics
        metrics(event)
        if isinstance(event, RunStarted):
            self.write(
                f"evalrun: {event.total} tasks on {event.provider} ({', '.join(event.models)}), "
                f"concurrency {event.concurrency}"
            )
        elif isinstance(event, TaskFinished):
            if self.due(metrics.percentage):
                self.write(progress_line(metrics))
        elif isinstance(event, RunFinished):
            if not self.ended_on_a_line:
                self.write(progress_line(metrics))
            self.write(f"evalrun: {event.state}" + (f": {event.message}" if event.message else ""))
