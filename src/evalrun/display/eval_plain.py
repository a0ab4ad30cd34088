"""Plain progress lines of an eval run, for CI logs: no ANSI codes, a line every few seconds and
at each quarter."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

from ..events import Event, PaceChanged, RunFinished, RunStarted, RunWarning, TaskFinished, Tick
from ..metrics import RunMetrics
from ..progress import counted, percentage
from ._plain import PlainLines, plain_progress

__all__ = ["PlainEvalDisplay", "progress_line"]


def progress_line(metrics: RunMetrics) -> str:
    overall, (state, message) = metrics.overall, metrics.status
    return (
        plain_progress(metrics.figures, "cases", f"{state} ({message})")
        + f" | pass {overall.passed} fail {overall.failed} error {overall.errors}"
        + (f" (top: {metrics.top_error})" if metrics.top_error else "")
        + f" | cache hits {metrics.cache_hits} | retries {metrics.retries} (429: {metrics.rate_limited})"
        f" | in flight {metrics.inflight}/{metrics.limit}"
    )


def _budget(event: PaceChanged) -> str:
    stated = [(event.requests_per_minute, "requests"), (event.tokens_per_minute, "tokens")]
    return ", ".join(f"{amount:,.0f} {unit}/min" for amount, unit in stated if amount)


class PlainEvalDisplay(PlainLines):
    def __init__(self, stream: IO[str], interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream, interval, clock)
        self.metrics = RunMetrics(clock=clock)

    def __call__(self, event: Event) -> None:
        metrics = self.metrics
        metrics(event)
        if isinstance(event, RunStarted):
            self.write(
                f"evalrun: {counted(event.total, 'task')} on {event.provider} ({', '.join(event.models)}), "
                f"concurrency {event.concurrency}"
            )
        elif isinstance(event, (TaskFinished, Tick)):  # a tick: a line every few seconds, whatever happens
            if self.due(percentage(metrics.overall.done, metrics.overall.total, False)):  # per case: no Figures
                self.write(progress_line(metrics))
        elif isinstance(event, PaceChanged):
            self.write(f"evalrun: pacing sends to the provider's stated budget: {_budget(event)}")
        elif isinstance(event, RunWarning):
            self.write(f"evalrun: warning: {event.message}")
        elif isinstance(event, RunFinished):
            if not self.ended_on_a_line:
                self.write(progress_line(metrics))
            self.write(f"evalrun: {event.state}" + (f": {event.message}" if event.message else ""))
