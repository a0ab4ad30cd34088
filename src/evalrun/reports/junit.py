"""JUnit XML, the one writer for eval and test runs: CI systems read it as test results.

Test ids, pytest's messages and a model's answers may hold any character, and XML 1.0 forbids
some (NUL, most other C0 controls, lone surrogates, U+FFFE/U+FFFF): one of them makes the whole
file unreadable to every CI parser, and a lone surrogate cannot even be encoded in UTF-8. So each
one is written as the visible escape Python's ``repr`` would use (``\\x1b``, ``\\ud800``): the text
stays readable and says what was there, where U+FFFD would hide it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Literal

from .files import quoteattr

__all__ = ["JUnitCase", "JUnitTotals", "write_junit"]

_MESSAGE_LIMIT = 1000
#: Everything outside XML 1.0's ``Char`` production (tab, LF, CR, and three ranges), named by what
#: it leaves out: the C0 controls but those three, the surrogates, U+FFFE and U+FFFF. (The same
#: class written as a negation of the ranges kept takes 10 times longer to compile: 6 ms a run.)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 forbids written as a visible ``\\xNN``/``\\uNNNN`` escape."""
    return _NOT_XML.sub(_escape, text)


def _attr(text: str) -> str:
    return quoteattr(_xml_safe(text))


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
        f'name={_attr(totals.name)} tests="{totals.tests}" failures="{totals.failures}" '
        f'errors="{totals.errors}" skipped="{totals.skipped}" time="{totals.seconds}"'
    )
    handle.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites {attrs}>\n<testsuite {attrs}>\n')
    for case in cases:
        head = f'  <testcase classname={_attr(case.classname)} name={_attr(case.name)} time="{case.seconds:.3f}"'
        if case.verdict is None:
            handle.write(head + "/>\n")
            continue
        message = _attr(case.message[:_MESSAGE_LIMIT] or case.verdict)
        handle.write(f"{head}>\n    <{case.verdict} message={message}/>\n  </testcase>\n")
    handle.write("</testsuite>\n</testsuites>\n")
