"""An eval run's report files, streamed from the spool: results.json, JUnit XML, Markdown."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from ..schema import SCHEMA_VERSION, RunInfo, Status, Summary
from .files import atomic_write
from .junit import JUnitCase, JUnitTotals, write_junit
from .markdown import failure_text, write_markdown
from .spool import CaseSpool

__all__ = ["write_reports"]


def _write_json(handle: IO[str], run: RunInfo, summary: Summary, spool: CaseSpool) -> None:
    head = json.dumps({"schema": SCHEMA_VERSION, "run": run, "summary": summary}, ensure_ascii=False, indent=1)
    handle.write(head[:-2] + ',\n "cases": [')
    for i, line in enumerate(spool.lines()):  # already JSON: copied, not decoded and encoded again
        handle.write(("\n  " if i == 0 else ",\n  ") + line)
    handle.write("\n ]\n}\n")


_VERDICTS: Mapping[str, Any] = {Status.FAIL: "failure", Status.ERROR: "error", Status.NOT_RUN: "skipped"}


def _junit_cases(spool: CaseSpool) -> Iterator[JUnitCase]:
    for record in spool.records():
        name = f"{record['id']} [{record['model']}]" + (f" #{record['repeat']}" if record["repeat"] else "")
        verdict = _VERDICTS.get(record["status"])
        message = "" if verdict is None else "not run" if verdict == "skipped" else failure_text(record)
        yield JUnitCase(record["category"], name, record["latency_ms"] / 1000, verdict, message)


def _write_junit(handle: IO[str], summary: Summary, spool: CaseSpool) -> None:
    s = summary
    totals = JUnitTotals("evalrun", s["total"], s["failed"], s["errors"], s["not_run"], s["wall_seconds"])
    write_junit(handle, totals, _junit_cases(spool))


def write_reports(
    spool: CaseSpool,
    run: RunInfo,
    summary: Summary,
    *,
    output: str | None = None,
    junit: str | None = None,
    summary_md: str | None = None,
    state: str = "completed",
    exit_code: int = 0,
) -> None:
    """Write every requested report from the spooled cases; one that cannot be written (a disk
    full since the run began) costs only itself: the others are written, then its error raised."""
    writers: list[tuple[str | None, Callable[[IO[str]], object]]] = [
        (output, lambda h: _write_json(h, run, summary, spool)),
        (junit, lambda h: _write_junit(h, summary, spool)),
        (summary_md, lambda h: write_markdown(h, run, summary, spool.records(), state, exit_code)),
    ]
    failures: list[OSError] = []
    for path, write in writers:
        if path:
            try:
                atomic_write(path, write)
            except OSError as exc:
                failures.append(exc)
    if failures:
        raise failures[0]
