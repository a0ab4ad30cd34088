"""Run metrics: an observer that turns an eval run's events into counters and its summary.

Its state is bounded whatever the number of cases: counters, one row per category and model, and
a log-bucket latency histogram (percentiles within 1 % relative error) instead of a list of
latencies. Displays, progress callbacks and the summary in results.json all read one ``RunMetrics``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .events import (
    ConcurrencyChanged,
    Event,
    PaceChanged,
    RetryResumed,
    RetryScheduled,
    RunFinished,
    RunStarted,
    RunWarning,
    TaskFinished,
    TasksNotRun,
    TaskStarted,
)
from .progress import Figures, clipped, counted, figures, progress_dict
from .schema import FINAL_STATES, ProgressDict, RunState, Status, Summary

__all__ = ["Counts", "LatencyHistogram", "RunMetrics"]

_BUCKET_GROWTH = 1.02  # adjacent buckets differ by 2 %: a midpoint is within 1 % of any value in it


class LatencyHistogram:
    """Streaming percentiles in constant memory (a few hundred buckets at most)."""

    relative_error = (_BUCKET_GROWTH - 1) / 2

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0

    def add(self, value_ms: float) -> None:
        index = math.floor(math.log(max(value_ms, 0.01)) / math.log(_BUCKET_GROWTH))
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1

    def percentile(self, fraction: float) -> float:
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
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

    def add(self, status: Status) -> None:
        if status == Status.PASS:
            self.passed += 1
        elif status == Status.FAIL:
            self.failed += 1
        else:
            self.errors += 1


@dataclass
class RunMetrics:
    """Everything a display or a summary wants to know about an eval run, kept up to date by events."""

    clock: Callable[[], float] = time.monotonic
    run_id: str = ""
    provider: str = ""
    models: tuple[str, ...] = ()
    state: RunState = RunState.STARTING
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
    #: The request budget per minute the provider's headers state, when they do (sends are paced to it).
    paced_rpm: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    not_run: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    warnings: list[str] = field(default_factory=list)
    #: Answers cut at the token limit: scored, but rarely what the suite meant to test.
    truncated: int = 0
    #: Cases in error by reason (one line, clipped), with the first few ids of each: the top reason
    #: of the status lines and the errors table at the end, counted as the run goes.
    error_reasons: Counter[str] = field(default_factory=Counter)
    error_ids: dict[str, list[str]] = field(default_factory=dict)
    #: The category of the task taken up last: the one a status message says is being evaluated.
    current_category: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    _backoff_until: float = 0.0
    _backoff_for_rate_limit: bool = False  # the wait that ends last is a 429's
    _busy_integral: float = 0.0
    _busy_since: float = 0.0

    def __call__(self, event: Event) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    # -- event handlers -------------------------------------------------------------------

    def _on_run_started(self, event: RunStarted) -> None:
        self.run_id, self.provider, self.models = event.run_id, event.provider, event.models
        self.overall.total, self.limit = event.total, event.concurrency
        self.by_category = {name: Counts(total=n) for name, n in event.categories.items()}
        per_model = event.total // max(1, len(event.models))
        self.by_model = {model: Counts(total=per_model) for model in event.models}
        self.started_at = self._busy_since = event.at

    def _move_inflight(self, delta: int, at: float) -> None:
        self._busy_integral += self.inflight * (at - self._busy_since)
        self._busy_since = at
        self.inflight += delta
        self.peak_inflight = max(self.peak_inflight, self.inflight)

    def _taking_up(self, category: str) -> None:
        self.current_category = category
        if self.state == RunState.STARTING:
            self.state = RunState.RUNNING

    def _on_task_started(self, event: TaskStarted) -> None:
        self._taking_up(event.category)
        self._move_inflight(+1, event.at)

    def _on_retry(self, event: RetryScheduled) -> None:
        self.retries += 1
        self.rate_limited += event.status == 429
        if event.at + event.delay >= self._backoff_until:
            self._backoff_until = event.at + event.delay
            self._backoff_for_rate_limit = event.status == 429
        if event.slot_released:  # waiting, not in flight, until it resumes
            self._move_inflight(-1, event.at)

    def _on_resumed(self, event: RetryResumed) -> None:
        self._move_inflight(+1, event.at)

    def _on_concurrency(self, event: ConcurrencyChanged) -> None:
        self.limit = event.limit

    def _on_pace(self, event: PaceChanged) -> None:
        self.paced_rpm = event.requests_per_minute

    def _on_task_finished(self, event: TaskFinished) -> None:
        result = event.result
        if result.status == Status.NOT_RUN:
            self.not_run += 1
            return
        if result.cached:
            self.cache_hits += 1  # counted as it finishes: a hit cancelled before is a task not run
            self._taking_up(result.category)
        else:
            self._move_inflight(-1, event.at)
        self.overall.add(result.status)
        if result.status == Status.ERROR:
            reason = clipped(result.error or "", _REASON_CUT)
            self.error_reasons[reason] += 1
            ids = self.error_ids.setdefault(reason, [])
            if len(ids) < _IDS_PER_REASON:
                ids.append(result.id)
        self.by_category.setdefault(result.category, Counts()).add(result.status)
        self.by_model.setdefault(result.model, Counts()).add(result.status)
        if result.status != Status.ERROR:
            self.latency.add(result.latency_ms)
        if result.finish_reason in TRUNCATED:
            self.truncated += 1
        self.prompt_tokens += result.tokens["prompt"]
        self.completion_tokens += result.tokens["completion"]

    def _on_not_run(self, event: TasksNotRun) -> None:
        self.not_run += len(event.tasks)

    def _on_run_finished(self, event: RunFinished) -> None:
        self._move_inflight(-self.inflight, event.at)  # cancelled calls end with the run
        self.state, self.message = event.state, event.message
        self.finished_at = event.at

    # -- derived figures --------------------------------------------------------------------

    @property
    def top_error(self) -> str:
        """The most frequent reason of the cases in error ("" when none), for a status line."""
        return self.error_reasons.most_common(1)[0][0] if self.error_reasons else ""

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or self.clock()) - self.started_at

    @property
    def figures(self) -> Figures:
        elapsed = self.elapsed
        return figures(self.overall.done, self.overall.total, elapsed, elapsed, self.state in FINAL_STATES)

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
    def display_state(self) -> RunState:
        if self.state == RunState.RUNNING and self.clock() < self._backoff_until:
            return RunState.BACKING_OFF
        return self.state

    @property
    def status(self) -> tuple[RunState, str]:
        """The state and what the run is doing, in the words every display, the progress dict and
        the ``state_changed`` events share: ``running``, "evaluating category reasoning: 12/40";
        ``backing off``, "waiting 4 s for the rate limit"."""
        state = self.display_state
        if state == RunState.STARTING:
            return state, f"starting: {counted(self.overall.total, 'task')} on {self.provider}"
        if state == RunState.BACKING_OFF:
            wait = max(1, math.ceil(self._backoff_until - self.clock()))
            why = "for the rate limit" if self._backoff_for_rate_limit else "to retry"
            return state, f"waiting {wait} s {why}"
        if state == RunState.RUNNING:
            overall = self.overall
            if overall.total and overall.done + self.not_run >= overall.total:  # the reports are next
                return state, f"all {counted(overall.total, 'task')} ended: writing the results"
            category = self.by_category.get(self.current_category, overall)
            return state, f"evaluating category {self.current_category}: {category.done}/{category.total}"
        return state, self.message or f"{self.overall.done}/{self.overall.total} cases"

    @property
    def phase(self) -> tuple[RunState, str]:
        """What a ``state_changed`` event is told on: the state, and the category being evaluated."""
        return self.display_state, self.current_category

    def progress(self) -> ProgressDict:
        """The progress dict given to callbacks."""
        current, overall = self.figures, self.overall
        state, message = self.status
        return progress_dict(
            state,
            message,
            current,
            {
                "passed": overall.passed,
                "failed": overall.failed,
                "errors": overall.errors,
                "cache_hits": self.cache_hits,
                "retries": self.retries,
                "rate_limited": self.rate_limited,
                "in_flight": self.inflight,
                "concurrency_limit": self.limit,
                "cases_per_second": round(current.rate, 2),
                "top_error": self.top_error,
                "categories": {
                    name: {"total": c.total, "done": c.done, "passed": c.passed} for name, c in self.by_category.items()
                },
            },
        )

    def summary(self) -> Summary:
        """The ``summary`` of results.json."""
        overall, wall = self.overall, self.elapsed
        return {
            "total": overall.total,
            "passed": overall.passed,
            "failed": overall.failed,
            "errors": overall.errors,
            "not_run": self.not_run,
            "pass_rate": round(overall.pass_rate, 6),
            "wall_seconds": round(wall, 3),
            "cases_per_second": round(overall.done / wall, 2) if wall > 0 else 0.0,
            "cache_hits": self.cache_hits,
            "cache_efficiency": round(self.cache_efficiency, 6),
            "avg_concurrency": round(self.avg_concurrency, 2),
            "peak_concurrency": self.peak_inflight,
            "retries": self.retries,
            "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
            "latency_ms": {
                "p50": round(self.latency.percentile(0.5), 1),
                "p95": round(self.latency.percentile(0.95), 1),
            },
            "by_category": {
                name: {"total": c.total, "passed": c.passed, "pass_rate": round(c.pass_rate, 6) if c.done else None}
                for name, c in sorted(self.by_category.items())
            },
            "truncated": self.truncated,
            "warnings": list(self.warnings),
            "latency_histogram": {
                "growth": _BUCKET_GROWTH,
                "buckets": {str(index): count for index, count in sorted(self.latency.buckets.items())},
            },
        }

    def _on_warning(self, event: RunWarning) -> None:
        self.warnings.append(event.message)


_REASON_CUT = 100  # characters of an error's reason that group cases (the rest is in results.json)
_IDS_PER_REASON = 3


#: How APIs say an answer was cut at the token limit (OpenAI and its kind; Anthropic).
TRUNCATED = frozenset({"length", "max_tokens"})

_HANDLERS: dict[type, Callable[[RunMetrics, Any], None]] = {
    RunStarted: RunMetrics._on_run_started,
    TaskStarted: RunMetrics._on_task_started,
    RetryScheduled: RunMetrics._on_retry,
    RetryResumed: RunMetrics._on_resumed,
    ConcurrencyChanged: RunMetrics._on_concurrency,
    PaceChanged: RunMetrics._on_pace,
    TaskFinished: RunMetrics._on_task_finished,
    TasksNotRun: RunMetrics._on_not_run,
    RunFinished: RunMetrics._on_run_finished,
    RunWarning: RunMetrics._on_warning,
}
