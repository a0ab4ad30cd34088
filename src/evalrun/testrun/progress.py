"""The state of a pytest run, rebuilt from its events: an observer, like an eval run's metrics.

Everything the displays, the results files and the exit code need comes from here, so results
exist whatever way the run ended: tests that started and never reported are *in flight*, tests
that were collected and never started are *not run*.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from ..events import (
    CollectError,
    CollectionFinished,
    Event,
    RunFinished,
    RunStarted,
    SessionFinished,
    SessionStarted,
    TestFinished,
    TestsReplayed,
    TestStarted,
)
from ..progress import Figures, figures, progress_dict
from ..schema import FINAL_STATES, ProgressCounts, ProgressDict, RunState, TestCounts, TestOutcome, TestRecord

__all__ = ["TestProgress"]

_NOT_FAILING = (TestOutcome.PASSED, TestOutcome.XPASSED, TestOutcome.SKIPPED, TestOutcome.XFAILED)
_FAILING = (TestOutcome.FAILED, TestOutcome.ERROR)


@dataclass
class TestProgress:
    """Counters, per-test records and stage times of one run, updated event by event."""

    __test__ = False  # not a pytest test class, whatever its name

    clock: Callable[[], float] = time.monotonic
    state: RunState = RunState.STARTING
    message: str = ""
    exit_code: int | None = None
    total: int = 0
    collected: tuple[str, ...] = ()
    counts: dict[TestOutcome, int] = field(default_factory=lambda: dict.fromkeys(TestOutcome, 0))
    records: dict[str, TestRecord] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    failures: list[TestRecord] = field(default_factory=list)  # failed or error, in the order they came
    started: set[str] = field(default_factory=set)
    exit_status: int | None = None
    launched_at: float | None = None
    session_at: float | None = None
    collected_at: float | None = None
    finished_at: float | None = None
    ended_at: float | None = None
    replayed_from: str | None = None

    def __call__(self, event: Event) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    # -- events ---------------------------------------------------------------------------------

    def _on_run_started(self, event: RunStarted) -> None:
        self.launched_at = event.at

    def _on_session_started(self, event: SessionStarted) -> None:
        self.session_at, self.state = event.at, RunState.COLLECTING

    def _on_collection(self, event: CollectionFinished) -> None:
        self.collected, self.total = event.ids, event.count
        self.collected_at, self.state = event.at, RunState.RUNNING

    def _on_collect_error(self, event: CollectError) -> None:
        self._finish(TestRecord(event.id or "<collection>", TestOutcome.ERROR, 0.0, event.message))

    def _on_test_started(self, event: TestStarted) -> None:
        self.running[event.id] = event.at
        self.started.add(event.id)

    def _on_test_finished(self, event: TestFinished) -> None:
        known = self.records.get(event.id)
        if known is None:
            self.running.pop(event.id, None)
            self._finish(TestRecord(event.id, event.outcome, event.duration, event.message))
            return
        known.duration += event.duration  # a teardown that reported after the test had its outcome
        if event.outcome in _FAILING and known.outcome in _NOT_FAILING:
            self.counts[known.outcome] -= 1
            self.counts[event.outcome] += 1
            known.outcome, known.message = event.outcome, event.message
            self.failures.append(known)

    def _on_session_finished(self, event: SessionFinished) -> None:
        self.exit_status, self.finished_at = event.exit_status, event.at

    def _on_replayed(self, event: TestsReplayed) -> None:
        self.replayed_from = event.recorded_at
        self.counts.update({outcome: event.counts.get(outcome, 0) for outcome in TestOutcome})
        self.total = event.total

    def _on_run_finished(self, event: RunFinished) -> None:
        self.state, self.message, self.exit_code, self.ended_at = event.state, event.message, event.exit_code, event.at

    def _finish(self, record: TestRecord) -> None:
        self.records[record.id] = record
        self.counts[record.outcome] += 1
        if record.outcome in _FAILING:
            self.failures.append(record)

    # -- what it amounts to ---------------------------------------------------------------------

    @property
    def replayed(self) -> bool:
        return self.replayed_from is not None

    @property
    def in_flight(self) -> list[str]:
        return [test_id for test_id in self.running if test_id not in self.records]

    def not_run(self) -> list[str]:
        return [test_id for test_id in self.collected if test_id not in self.started]

    def stages(self) -> dict[str, float | None]:
        """Seconds spent starting Python and pytest, collecting, running tests, and after them."""
        end = self.ended_at or self.clock()
        run_end = self.finished_at or end

        def span(start: float | None, stop: float | None) -> float | None:
            return round(max(0.0, stop - start), 3) if start is not None and stop is not None else None

        return {
            "startup": span(self.launched_at, self.session_at or end),
            "collection": span(self.session_at, self.collected_at or (end if self.session_at else None)),
            "run": span(self.collected_at, run_end if self.collected_at else None),
            "teardown": span(self.finished_at, end if self.finished_at else None),
        }

    def outcome_counts(self) -> TestCounts:
        c = self.counts
        return {
            "passed": c[TestOutcome.PASSED],
            "failed": c[TestOutcome.FAILED],
            "skipped": c[TestOutcome.SKIPPED],
            "xfailed": c[TestOutcome.XFAILED],
            "xpassed": c[TestOutcome.XPASSED],
            "error": c[TestOutcome.ERROR],
        }

    @property
    def current(self) -> str:
        return next(reversed(self.running), "") if self.running else ""

    @property
    def elapsed(self) -> float:
        return (self.ended_at or self.clock()) - self.launched_at if self.launched_at is not None else 0.0

    @property
    def figures(self) -> Figures:
        """Tests done against the total; the rate counts from the end of collection."""
        working = 0.0
        if self.collected_at is not None:
            working = (self.finished_at or self.ended_at or self.clock()) - self.collected_at
        finished = self.state in FINAL_STATES
        done = len(self.records)  # a module that failed to collect is one more, beyond the tests collected
        return figures(done, max(self.total, done), self.elapsed, working, finished)

    def progress(self) -> ProgressDict:
        """The progress dict given to callbacks, with the test counts."""
        current = self.figures
        message = self.message or (f"running {self.current}" if self.current else self.state)
        # A cast, as mypy will not spread one TypedDict into another with optional keys.
        extra = {"in_flight": len(self.in_flight), "tests_per_second": round(current.rate, 2)}
        counts = cast(ProgressCounts, {**self.outcome_counts(), **extra})
        return progress_dict(self.state, message, current, counts)


_HANDLERS: dict[type, Callable[[TestProgress, Any], None]] = {
    RunStarted: TestProgress._on_run_started,
    SessionStarted: TestProgress._on_session_started,
    CollectionFinished: TestProgress._on_collection,
    CollectError: TestProgress._on_collect_error,
    TestStarted: TestProgress._on_test_started,
    TestFinished: TestProgress._on_test_finished,
    SessionFinished: TestProgress._on_session_finished,
    TestsReplayed: TestProgress._on_replayed,
    RunFinished: TestProgress._on_run_finished,
}
