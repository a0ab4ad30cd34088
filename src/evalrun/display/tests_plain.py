"""Plain progress lines of ``evalrun test`` for CI, and the final summary printed in every mode."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

from ..events import CollectError, CollectionFinished, Event, RunFinished, RunStarted, TestFinished
from ..progress import percentage
from ..schema import TestOutcome
from ..testrun.progress import TestProgress
from ._plain import PlainLines, plain_progress

__all__ = ["PlainTestDisplay", "print_test_summary", "tests_progress_line"]

_FAILURES_SHOWN = 20


def _counts(progress: TestProgress) -> str:
    shown = (TestOutcome.PASSED, TestOutcome.FAILED)
    return " ".join(f"{name} {count}" for name, count in progress.counts.items() if count or name in shown)


def tests_progress_line(progress: TestProgress) -> str:
    line = plain_progress(progress.figures, "tests", progress.state) + f" | {_counts(progress)}"
    return line + (f" | now {progress.current}" if progress.current else "")


class PlainTestDisplay(PlainLines):
    def __init__(self, stream: IO[str], interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream, interval, clock)
        self.progress = TestProgress(clock=clock)
        self._failures_told = 0

    def __call__(self, event: Event) -> None:
        progress = self.progress
        progress(event)
        if isinstance(event, RunStarted) and event.pid is not None:
            self.write(f"evalrun test: pytest started (pid {event.pid})")
        elif isinstance(event, CollectionFinished):
            self.write(f"evalrun test: {progress.total} tests collected")
        elif isinstance(event, (TestFinished, CollectError)):
            for record in progress.failures[self._failures_told :]:
                self.write(f"{record.outcome.upper()}: {record.id}")
            self._failures_told = len(progress.failures)
            if progress.total and self.due(percentage(len(progress.records), progress.total, False)):
                self.write(tests_progress_line(progress))
        elif isinstance(event, RunFinished) and not self.ended_on_a_line and not progress.replayed:
            self.write(tests_progress_line(progress))


def print_test_summary(progress: TestProgress, log_path: str | None, stream: IO[str]) -> None:
    write = stream.write
    exit_code = progress.exit_code or 0
    if progress.replayed:
        write(f"evalrun test: {progress.message}\n")
    counts = ", ".join(f"{count} {name}" for name, count in progress.counts.items() if count)
    write(f"{progress.total} tests: {counts or 'none ran'} in {progress.elapsed:.2f} s\n")
    if not progress.replayed:
        stages = ", ".join(
            f"{name} {seconds:.2f} s" for name, seconds in progress.stages().items() if seconds is not None
        )
        write(f"stages: {stages}\n")
    failures = progress.failures
    for record in failures[:_FAILURES_SHOWN]:
        why = f" - {record.message.splitlines()[0]}" if record.message else ""
        write(f"  {record.outcome.upper()} {record.id}{why}\n")
    if len(failures) > _FAILURES_SHOWN:
        write(f"  ... and {len(failures) - _FAILURES_SHOWN} more\n")
    for test_id in progress.in_flight:
        write(f"  IN FLIGHT {test_id}\n")
    not_run = len(progress.not_run())
    if not_run:
        write(f"  {not_run} tests not run\n")
    # The message's first line says why the run ended; pytest's own last words may follow it.
    why, _, pytest_said = ("", "", "") if progress.replayed else progress.message.partition("\n")
    for line in pytest_said.splitlines():
        write(f"  | {line}\n")
    tail = f"; pytest output: {log_path}" if log_path and (failures or exit_code) else ""
    told = f" ({why})" if why else ""
    write(f"evalrun test: {progress.state}{told}, exit {exit_code}{tail}\n")
