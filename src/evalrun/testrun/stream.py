"""The pytest plugin's event file, tailed and read as typed events.

The plugin (``plugin.py``) writes plain JSON lines with wall-clock times, since it runs in
another interpreter and imports nothing of evalrun's; here each line becomes one of the test events
of ``evalrun.events``, on the parent's monotonic clock, with pytest's report turned into an outcome.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import IO, Any

from ..events import (
    CollectError,
    CollectionFinished,
    Event,
    SessionFinished,
    SessionStarted,
    TestFinished,
    TestStarted,
)
from ..schema import TestOutcome

__all__ = ["EventTail", "outcome_of", "to_event"]


def outcome_of(report: Mapping[str, Any]) -> TestOutcome:
    """A pytest report phase in the words of test results (xfail and the setup phase told apart)."""
    outcome, when, xfail = report["outcome"], report["when"], report["xfail"]
    if outcome == "failed":
        return TestOutcome.FAILED if when == "call" else TestOutcome.ERROR
    if outcome == "skipped":
        return TestOutcome.XFAILED if xfail else TestOutcome.SKIPPED
    return TestOutcome.XPASSED if xfail else TestOutcome.PASSED


def to_event(line: Mapping[str, Any]) -> Event | None:
    """One plugin line as an event; None for a line of a kind this evalrun does not know."""
    kind = line.get("event")
    at = time.monotonic() - (time.time() - float(line.get("t", time.time())))  # wall clock -> monotonic
    if kind == "session_start":
        return SessionStarted(at=at)
    if kind == "collection_finished":
        return CollectionFinished(int(line["count"]), tuple(line["ids"]), at=at)
    if kind == "collect_error":
        return CollectError(line["id"], line["message"], at=at)
    if kind == "test_started":
        return TestStarted(line["id"], at=at)
    if kind == "test_report":
        outcome = outcome_of(line)
        return TestFinished(line["id"], line["when"], outcome, float(line["duration"]), line["message"], at=at)
    if kind == "session_finished":
        return SessionFinished(int(line["exit_status"]), at=at)
    return None


class EventTail:
    """Reads the events appended to the plugin's file since the last read; a partial last line waits."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._pending = ""

    def read(self) -> Iterator[Event]:
        chunk = self._stream.read()
        if not chunk:
            return
        *complete, self._pending = (self._pending + chunk).split("\n")
        for line in complete:
            if not line.strip():
                continue
            try:
                event = to_event(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut short by a killed pytest tells nothing
            if event is not None:
                yield event
