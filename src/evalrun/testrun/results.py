"""Results of a test run: the JSON document and JUnit XML, built from the run's progress."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO, Literal

from ..reports.files import atomic_write
from ..reports.junit import JUnitCase, JUnitTotals, write_junit
from ..schema import SCHEMA_VERSION, RunState, TestOutcome, TestResultsDocument
from .progress import TestProgress

__all__ = ["build_document", "write_test_reports"]


def build_document(
    progress: TestProgress, command: list[str], started_at: float, processes_killed: int
) -> TestResultsDocument:
    """The ``--output`` document; ``started_at`` is the Unix time pytest was launched, and
    ``processes_killed`` counts the processes of pytest's group, pytest aside, that evalrun killed."""
    in_flight, not_run = progress.in_flight, progress.not_run()
    duration = round(progress.elapsed, 3)
    # Tests reported over the run's duration as the document states it (``duration_seconds``), not
    # over the run stage alone: 11 tests in 0.634 s are 17.35 a second, not 908.6.
    tests_per_second = len(progress.records) / duration if duration > 0 else 0.0
    return {
        "schema": SCHEMA_VERSION,
        "kind": "pytest",
        "state": progress.state,
        "message": progress.message,
        "exit_code": progress.exit_code if progress.exit_code is not None else 0,
        "pytest_exit_status": progress.exit_status,
        "processes_killed": processes_killed,
        "replayed": False,
        "command": command,
        "started_at": datetime.fromtimestamp(started_at, timezone.utc).isoformat(timespec="seconds"),
        "summary": {
            "total": progress.total,
            **progress.outcome_counts(),
            "in_flight": len(in_flight),
            "not_run": len(not_run),
            "duration_seconds": duration,
            "tests_per_second": round(tests_per_second, 2),
        },
        "stages": progress.stages(),
        "tests": [
            {"id": r.id, "outcome": r.outcome, "duration": round(r.duration, 6), "message": r.message}
            for r in progress.records.values()
        ],
        "in_flight": in_flight,
        "not_run": not_run,
    }


_VERDICTS: dict[str, Literal["failure", "error", "skipped"]] = {
    TestOutcome.FAILED: "failure",
    TestOutcome.ERROR: "error",
    TestOutcome.SKIPPED: "skipped",
    TestOutcome.XFAILED: "skipped",
}


def _case(
    test_id: str, seconds: float, verdict: Literal["failure", "error", "skipped"] | None, message: str
) -> JUnitCase:
    path, _, name = test_id.rpartition("::")
    classname = path.replace("/", ".").removesuffix(".py") if path else test_id
    return JUnitCase(classname, name or test_id, seconds, verdict, message)


def _junit_cases(document: TestResultsDocument) -> Iterator[JUnitCase]:
    for test in document["tests"]:
        verdict = _VERDICTS.get(test["outcome"])
        yield _case(test["id"], test["duration"], verdict, (test["message"] or test["outcome"]) if verdict else "")
    timed_out = document["state"] == RunState.TIMEOUT
    for test_id in document["in_flight"]:
        yield _case(
            test_id, 0.0, "error", "timeout" if timed_out else f"in flight when the run ended: {document['state']}"
        )
    for test_id in document["not_run"]:
        yield _case(test_id, 0.0, "skipped", "not run")


def _write_junit(handle: IO[str], document: TestResultsDocument) -> None:
    s = document["summary"]
    totals = JUnitTotals(
        "pytest",
        s["total"] or len(document["tests"]),
        s["failed"],
        s["error"] + s["in_flight"],
        s["skipped"] + s["xfailed"] + s["not_run"],
        s["duration_seconds"],
    )
    write_junit(handle, totals, _junit_cases(document))


def write_test_reports(document: TestResultsDocument, output: str | None, junit: str | None) -> None:
    if output:
        # One C-encoded string: json.dump with indent takes the slow pure-Python path (40 ms at 2,000 tests).
        atomic_write(output, lambda h: h.write(json.dumps(document)))
    if junit:
        atomic_write(junit, lambda h: _write_junit(h, document))
