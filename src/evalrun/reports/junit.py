"""JUnit XML, the one writer for eval and test runs: CI systems read it as test results."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Literal

from .files import quoteattr

__all__ = ["JUnitCase", "JUnitTotals", "write_junit"]

_MESSAGE_LIMIT = 1000


@dataclass(frozen=True)
class JUnitCase:
    """One ``<testcase>``: passed when ``verdict`` is None, else failed, in error or skipped."""

    classname: str
    name: str
    seconds: float
    verdict: Literal["failure", "error", "skipped"] | None = None
    message: str = ""


@dataclass(frozen=True)
class JUnitTotals:
    """The counts of the suite, known before its cases are streamed."""

    name: str
    tests: int
    failures: int
    errors: int
    skipped: int
    seconds: float


def write_junit(handle: IO[str], totals: JUnitTotals, cases: Iterable[JUnitCase]) -> None:
    """One ``<testsuites>`` holding one ``<testsuite>``, the cases streamed as they come."""
    attrs = (
        f'name={quoteattr(totals.name)} tests="{totals.tests}" failures="{totals.failures}" '
        f'errors="{totals.errors}" skipped="{totals.skipped}" time="{totals.seconds}"'
    )
    handle.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites {attrs}>\n<testsuite {attrs}>\n')
    for case in cases:
        head = (
            f'  <testcase classname={quoteattr(case.classname)} name={quoteattr(case.name)} time="{case.seconds:.3f}"'
        )
        if case.verdict is None:
            handle.write(head + "/>\n")
            continue
        message = quoteattr(case.message[:_MESSAGE_LIMIT] or case.verdict)
        handle.write(f"{head}>\n    <{case.verdict} message={message}/>\n  </testcase>\n")
    handle.write("</testsuite>\n</testsuites>\n")
