"""Results of a test run: the JSON document (schema in one place) and JUnit XML, from the progress."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import IO, Any

from ..results import atomic_write, quoteattr
from .progress import TestProgress

__all__ = ["SCHEMA_VERSION", "build_document", "write_test_reports"]

SCHEMA_VERSION = 1


def build_document(progress: TestProgress, exit_code: int, command: list[str]) -> dict[str, Any]:
    in_flight, not_run = progress.in_flight, progress.not_run()
    duration = progress.elapsed
    return {
        "schema": SCHEMA_VERSION,
        "kind": "pytest",
        "state": progress.state,
        "message": progress.message,
        "exit_code": exit_code,
        "pytest_exit_status": progress.exit_status,
        "replayed": progress.replayed,
        "command": command,
        "started_at": datetime.fromtimestamp(progress.launched_at, timezone.utc).isoformat(timespec="seconds"),
        "summary": {
            "total": progress.total,
            **progress.counts,
            "in_flight": len(in_flight),
            "not_run": len(not_run),
            "duration_seconds": round(duration, 3),
            "tests_per_second": round(progress.rate, 2),
        },
        "stages": progress.stages(),
        "tests": [
            {"id": r.id, "outcome": r.outcome, "duration": round(r.duration, 6), "message": r.message}
            for r in progress.records.values()
        ],
        "in_flight": in_flight,
        "not_run": not_run,
    }


def _junit_case(handle: IO[str], test_id: str, seconds: float, child: str = "") -> None:
    path, _, name = test_id.rpartition("::")
    classname = path.replace("/", ".").removesuffix(".py") if path else test_id
    handle.write(
        f"  <testcase classname={quoteattr(classname)} name={quoteattr(name or test_id)} "
        f'time="{seconds:.3f}"' + (f">\n    {child}\n  </testcase>\n" if child else "/>\n")
    )


_JUNIT_TAG = {"failed": "failure", "error": "error", "skipped": "skipped", "xfailed": "skipped"}


def _write_junit(handle: IO[str], document: Mapping[str, Any]) -> None:
    s = document["summary"]
    failures = s["failed"]
    errors = s["error"] + s["in_flight"]
    skipped = s["skipped"] + s["xfailed"] + s["not_run"]
    attrs = (
        f'name="pytest" tests="{s["total"] or len(document["tests"])}" failures="{failures}" '
        f'errors="{errors}" skipped="{skipped}" time="{s["duration_seconds"]}"'
    )
    handle.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites {attrs}>\n<testsuite {attrs}>\n')
    for test in document["tests"]:
        tag = _JUNIT_TAG.get(test["outcome"])
        child = f"<{tag} message={quoteattr(test['message'][:1000] or test['outcome'])}/>" if tag else ""
        _junit_case(handle, test["id"], test["duration"], child)
    for test_id in document["in_flight"]:
        _junit_case(
            handle,
            test_id,
            0.0,
            '<error message="timeout"/>'
            if document["state"] == "timeout"
            else f"<error message={quoteattr('in flight when the run ended: ' + document['state'])}/>",
        )
    for test_id in document["not_run"]:
        _junit_case(handle, test_id, 0.0, '<skipped message="not run"/>')
    handle.write("</testsuite>\n</testsuites>\n")


def write_test_reports(document: Mapping[str, Any], output: str | None, junit: str | None) -> None:
    if output:
        # One C-encoded string: json.dump with indent takes the slow pure-Python path (40 ms at 2,000 tests).
        atomic_write(output, lambda h: h.write(json.dumps(document)))
    if junit:
        atomic_write(junit, lambda h: _write_junit(h, document))
