"""The words a run, a case and a test end with: one vocabulary for results, events and displays."""

from __future__ import annotations

import sys
from enum import Enum

__all__ = ["FINAL_STATES", "RunKind", "RunState", "Status", "TestOutcome"]

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, Enum):
        """``enum.StrEnum`` of Python 3.11: members are their values, in JSON and in f-strings alike."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return str(self.value).__format__(spec)


class Status(StrEnum):
    """How one case x model x repeat ended (``cases[].status`` in results.json)."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # no answer: the provider failed for good, or evalrun itself did
    NOT_RUN = "not_run"  # the run ended (timeout, Ctrl-C) before the case was answered


class RunKind(StrEnum):
    EVAL = "eval"
    TEST = "test"


class RunState(StrEnum):
    """The state of a run, as displays show it and results record it."""

    STARTING = "starting"
    COLLECTING = "collecting"  # test runs: pytest is collecting
    RUNNING = "running"
    BACKING_OFF = "backing off"  # running, with calls waiting out a retry delay (shown, never final)
    COMPLETED = "completed"
    FAILED = "failed"  # test runs: pytest ran and some test failed
    ERROR = "error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"


FINAL_STATES = frozenset({RunState.COMPLETED, RunState.FAILED, RunState.ERROR, RunState.TIMEOUT, RunState.INTERRUPTED})


class TestOutcome(StrEnum):
    """How one pytest test ended, in pytest's own words (``tests[].outcome`` in test results)."""

    __test__ = False  # not a pytest test class, whatever its name

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    ERROR = "error"
