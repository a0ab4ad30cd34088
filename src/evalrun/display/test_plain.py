"""Plain progress lines for ``evalrun test`` in CI, and the final summary printed in every mode."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import IO, Any

from ..testrun.progress import TestProgress
from .plain import PlainLines, plain_progress

__all__ = ["PlainTestDisplay", "print_test_summary", "test_progress_line"]

_FAILURES_SHOWN = 20


def _counts(progress: TestProgress) -> str:
    return " ".join(
        f"{name} {count}" for name, count in progress.counts.items() if count or name in ("passed", "failed")
    )


def test_progress_line(progress: TestProgress) -> str:
    line = (
        plain_progress(
            progress.percentage,
            progress.done,
            progress.total,
            "tests",
            progress.rate,
            progress.elapsed,
            progress.eta_seconds,
            progress.state,
        )
        + f" | {_counts(progress)}"
    )
    return line + (f" | now {progress.current}" if progress.current else "")


class PlainTestDisplay(PlainLines):
    def __init__(self, stream: IO[str], interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream, interval, clock)
        self._failures_told = 0

    def __call__(self, progress: TestProgress, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        if kind == "launched":
            self.write(f"evalrun test: pytest started (pid {event['pid']})")
        elif kind == "collection_finished":
            self.write(f"evalrun test: {progress.total} tests collected")
        elif kind in ("test_report", "collect_error"):
            for record in progress.failures[self._failures_told :]:
                self.write(f"{record.outcome.upper()}: {record.id}")
            self._failures_told = len(progress.failures)
            if progress.total and self.due(progress.percentage):
                self.write(test_progress_line(progress))
        elif kind == "run_finished" and not self.ended_on_a_line:
            self.write(test_progress_line(progress))


def print_test_summary(progress: TestProgress, exit_code: int, log_path: str | None, stream: IO[str]) -> None:
    write = stream.write
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
        write(
            f"  {record.outcome.upper()} {record.id}"
            + (f" - {record.message.splitlines()[0]}" if record.message else "")
            + "\n"
        )
    if len(failures) > _FAILURES_SHOWN:
        write(f"  ... and {len(failures) - _FAILURES_SHOWN} more\n")
    for test_id in progress.in_flight:
        write(f"  IN FLIGHT {test_id}\n")
    not_run = len(progress.not_run())
    if not_run:
        write(f"  {not_run} tests not run\n")
    tail = f"; pytest output: {log_path}" if log_path and (failures or exit_code) else ""
    write(
        f"evalrun test: {progress.state}"
        + (f" ({progress.message})" if progress.message and not progress.replayed else "")
        + f", exit {exit_code}{tail}\n"
    )
