"""The state of a pytest run, rebuilt from the plugin's event lines.

Everything the display, the results files and the exit code need comes from here, so results
exist whatever way the run ended: tests that started and never reported are *in flight*, tests
that were collected and never started are *not run*.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..metrics import format_eta

__all__ = ["OUTCOMES", "TestProgress", "TestRecord"]

OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")
FINAL_STATES = ("completed", "failed", "error", "timeout", "interrupted")


@dataclass
class TestRecord:
    __test__ = False  # not a pytest test class, whatever its name

    id: str
    outcome: str
    duration: float = 0.0
    message: str = ""


def _outcome(report: dict[str, Any]) -> str:
    outcome, when, xfail = report["outcome"], report["when"], report["xfail"]
    if outcome == "failed":
        return "failed" if when == "call" else "error"
    if outcome == "skipped":
        return "xfailed" if xfail else "skipped"
    return "xpassed" if xfail else "passed"


@dataclass
class TestProgress:
    """Counters, per-test records and stage times of one run, updated event by event."""

    __test__ = False  # not a pytest test class, whatever its name

    clock: Callable[[], float] = time.time
    state: str = "starting"
    message: str = ""
    total: int = 0
    collected: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    records: dict[str, TestRecord] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    failures: list[TestRecord] = field(default_factory=list)  # failed or error, in the order they came
    started: set[str] = field(default_factory=set)
    exit_status: int | None = None
    launched_at: float = 0.0
    session_at: float | None = None
    collected_at: float | None = None
    last_report_at: float | None = None
    finished_at: float | None = None
    ended_at: float | None = None
    replayed: bool = False

    def __post_init__(self) -> None:
        self.launched_at = self.clock()

    # -- events from the plugin --------------------------------------------------------------

    def handle(self, event: dict[str, Any]) -> None:
        kind, at = event.get("event"), float(event.get("t", self.clock()))
        if kind == "session_start":
            self.session_at, self.state = at, "collecting"
        elif kind == "collection_finished":
            self.collected, self.total = list(event["ids"]), int(event["count"])
            self.collected_at, self.state = at, "running"
        elif kind == "collect_error":
            self._finish(TestRecord(event["id"] or "<collection>", "error", 0.0, event["message"]), at)
        elif kind == "test_started":
            self.running[event["id"]] = at
            self.started.add(event["id"])
        elif kind == "test_report":
            self._report(event, at)
        elif kind == "session_finished":
            self.exit_status, self.finished_at = int(event["exit_status"]), at

    def _report(self, report: dict[str, Any], at: float) -> None:
        test_id, outcome = report["id"], _outcome(report)
        known = self.records.get(test_id)
        if known is not None:  # a teardown error after the test had its outcome
            known.duration += report["duration"]
            if outcome in ("failed", "error") and known.outcome in ("passed", "xpassed", "skipped", "xfailed"):
                self.counts[known.outcome] -= 1
                self.counts[outcome] += 1
                known.outcome, known.message = outcome, report["message"]
                self.failures.append(known)
            return
        self.running.pop(test_id, None)
        self._finish(TestRecord(test_id, outcome, report["duration"], report["message"]), at)

    def _finish(self, record: TestRecord, at: float) -> None:
        self.records[record.id] = record
        self.counts[record.outcome] += 1
        if record.outcome in ("failed", "error"):
            self.failures.append(record)
        self.last_report_at = at

    # -- the end ------------------------------------------------------------------------------

    def end(self, state: str, message: str = "") -> None:
        self.state, self.message, self.ended_at = state, message, self.clock()

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

    # -- live figures ------------------------------------------------------------------------

    @property
    def done(self) -> int:
        return len(self.records)

    @property
    def elapsed(self) -> float:
        return (self.ended_at or self.clock()) - self.launched_at

    @property
    def rate(self) -> float:
        if self.collected_at is None:
            return 0.0
        seconds = (self.finished_at or self.ended_at or self.clock()) - self.collected_at
        return self.done / seconds if seconds > 0 else 0.0

    @property
    def percentage(self) -> float:
        if self.state in FINAL_STATES and not self.total:
            return 100.0
        return 100.0 * min(self.done, self.total) / self.total if self.total else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.state in FINAL_STATES:
            return 0.0
        remaining = self.total - self.done
        if remaining <= 0:
            return 0.0
        return remaining / self.rate if self.rate > 0 else None

    @property
    def current(self) -> str:
        return next(reversed(self.running), "") if self.running else ""

    def progress(self) -> dict[str, Any]:
        """The same progress dict as an evaluation run's (DESIGN §5), with test counts."""
        eta = self.eta_seconds
        return {
            "status": self.state,
            "progress_percentage": round(self.percentage, 2),
            "completed": self.done,
            "total": self.total,
            "message": self.message or (f"running {self.current}" if self.current else self.state),
            "eta_seconds": eta,
            "eta_formatted": format_eta(eta),
            **self.counts,
            "in_flight": len(self.in_flight),
            "tests_per_second": round(self.rate, 2),
            "elapsed_seconds": round(self.elapsed, 3),
        }
