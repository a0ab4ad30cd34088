"""Run metrics: an observer that turns the event stream into counters.

Its state is bounded whatever the number of cases: counters, one row per category and model, and
a log-bucket latency histogram (percentiles within 1 % relative error) instead of a list of
latencies. Displays, progress callbacks and the final summary all read from one ``RunMetrics``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .events import (
    CacheHit,
    ConcurrencyChanged,
    Event,
    RetryScheduled,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskStarted,
)

__all__ = ["Counts", "LatencyHistogram", "RunMetrics", "format_eta"]

_BUCKET_GROWTH = 1.02  # adjacent buckets differ by 2 %: a midpoint is within 1 % of any value in it


class LatencyHistogram:
    """Streaming percentiles in constant memory (a few hundred buckets at most)."""

    relative_error = (_BUCKET_GROWTH - 1) / 2

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.count = 0

    def add(self, value_ms: float) -> None:
        index = math.floor(math.log(max(value_ms, 0.01)) / math.log(_BUCKET_GROWTH))
        self._buckets[index] = self._buckets.get(index, 0) + 1
        self.count += 1

    def percentile(self, fraction: float) -> float:
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                return float(_BUCKET_GROWTH ** (index + 0.5))
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Counts:
    """Outcome counts of one slice of a run (all of it, a category, a model)."""

    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0

    @property
    def done(self) -> int:
        return self.passed + self.failed + self.errors

    @property
    def pass_rate(self) -> float:
        return self.passed / self.done if self.done else 0.0

    def add(self, status: str) -> None:
        if status == "pass":
            self.passed += 1
        elif status == "fail":
            self.failed += 1
        else:
            self.errors += 1


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--:--"
    seconds = round(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass
class RunMetrics:
    """Everything a display or a summary wants to know about a run, kept up to date by events."""

    clock: Callable[[], float] = time.monotonic
    run_id: str = ""
    provider: str = ""
    models: tuple[str, ...] = ()
    state: str = "starting"
    message: str = ""
    overall: Counts = field(default_factory=Counts)
    by_category: dict[str, Counts] = field(default_factory=dict)
    by_model: dict[str, Counts] = field(default_factory=dict)
    cache_hits: int = 0
    retries: int = 0
    rate_limited: int = 0
    inflight: int = 0
    peak_inflight: int = 0
    limit: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    not_run: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    started_at: float | None = None
    finished_at: float | None = None
    _backoff_until: float = 0.0
    _busy_integral: float = 0.0
    _busy_since: float = 0.0

    def __call__(self, event: Event) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    # -- event handlers -------------------------------------------------------------------

    def _on_run_started(self, event: RunStarted) -> None:
        self.run_id, self.provider, self.models = event.run_id, event.provider, event.models
        self.overall.total, self.limit, self.state = event.total, event.concurrency, "running"
        self.by_category = {name: Counts(total=n) for name, n in event.categories.items()}
        per_model = event.total // max(1, len(event.models))
        self.by_model = {model: Counts(total=per_model) for model in event.models}
        self.started_at = self._busy_since = event.at

    def _move_inflight(self, delta: int, at: float) -> None:
        self._busy_integral += self.inflight * (at - self._busy_since)
        self._busy_since = at
        self.inflight += delta
        self.peak_inflight = max(self.peak_inflight, self.inflight)

    def _on_task_started(self, event: TaskStarted) -> None:
        self._move_inflight(+1, event.at)

    def _on_cache_hit(self, event: CacheHit) -> None:
        self.cache_hits += 1

    def _on_retry(self, event: RetryScheduled) -> None:
        self.retries += 1
        self.rate_limited += event.status == 429
        self._backoff_until = max(self._backoff_until, event.at + event.delay)

    def _on_concurrency(self, event: ConcurrencyChanged) -> None:
        self.limit = event.limit

    def _on_task_finished(self, event: TaskFinished) -> None:
        result = event.result
        if result.status == "not_run":
            self.not_run += 1
            return
        if not result.cached:
            self._move_inflight(-1, event.at)
        self.overall.add(result.status)
        self.by_category.setdefault(result.category, Counts()).add(result.status)
        self.by_model.setdefault(result.model, Counts()).add(result.status)
        if result.status != "error":
            self.latency.add(result.latency_ms)
        self.prompt_tokens += result.tokens["prompt"]
        self.completion_tokens += result.tokens["completion"]

    def _on_run_finished(self, event: RunFinished) -> None:
        self._move_inflight(-self.inflight, event.at)  # cancelled calls end with the run
        self.state, self.message = event.state, event.message
        self.finished_at = event.at

    # -- derived figures --------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or self.clock()) - self.started_at

    @property
    def rate(self) -> float:
        elapsed = self.elapsed
        return self.overall.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        remaining = self.overall.total - self.overall.done
        if self.finished_at is not None or remaining <= 0:
            return 0.0
        return remaining / self.rate if self.rate > 0 else None

    @property
    def avg_concurrency(self) -> float:
        elapsed = self.elapsed
        if elapsed <= 0:
            return 0.0
        busy = self._busy_integral + self.inflight * ((self.finished_at or self.clock()) - self._busy_since)
        return busy / elapsed

    @property
    def cache_efficiency(self) -> float:
        return self.cache_hits / self.overall.done if self.overall.done else 0.0

    @property
    def display_state(self) -> str:
        if self.state == "running" and self.clock() < self._backoff_until:
            return "backing off"
        return self.state

    @property
    def percentage(self) -> float:
        total = self.overall.total
        return 100.0 * self.overall.done / total if total else 100.0

    def progress(self) -> dict[str, Any]:
        """The progress dict given to library callbacks (DESIGN §5)."""
        eta = self.eta_seconds
        done, total = self.overall.done, self.overall.total
        return {
            "status": self.display_state,
            "progress_percentage": round(self.percentage, 2),
            "completed": done,
            "total": total,
            "message": self.message or f"{done}/{total} cases",
            "eta_seconds": eta,
            "eta_formatted": format_eta(eta),
            "passed": self.overall.passed,
            "failed": self.overall.failed,
            "errors": self.overall.errors,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "in_flight": self.inflight,
            "concurrency_limit": self.limit,
            "cases_per_second": round(self.rate, 2),
            "elapsed_seconds": round(self.elapsed, 3),
        }


_HANDLERS: dict[type, Callable[[RunMetrics, Any], None]] = {
    RunStarted: RunMetrics._on_run_started,
    TaskStarted: RunMetrics._on_task_started,
    CacheHit: RunMetrics._on_cache_hit,
    RetryScheduled: RunMetrics._on_retry,
    ConcurrencyChanged: RunMetrics._on_concurrency,
    TaskFinished: RunMetrics._on_task_finished,
    RunFinished: RunMetrics._on_run_finished,
}
