"""The JSON-lines event log (``--events FILE``, ``--progress json``): one object per event.

The format is stable, for eval and test runs alike: ``{"event": NAME, "ts": UNIX_SECONDS,
...fields}``; a finished task carries its result record exactly as in results.json. The schema is
``schemas/events.schema.json`` in the repository.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import fields
from typing import IO, Any

from .events import Event, TaskFinished, TasksNotRun, Tick, event_name

__all__ = ["JsonLinesLog", "event_record"]


def event_record(event: Event, clock_offset: float) -> dict[str, Any]:
    """An event as a JSON-ready dict; ``clock_offset`` turns its monotonic ``at`` into Unix time."""
    record: dict[str, Any] = {"event": event_name(event), "ts": round(event.at + clock_offset, 6)}
    if isinstance(event, TaskFinished):
        record["result"] = event.result.to_dict()
        return record
    for item in fields(event):
        if item.name != "at":
            value = getattr(event, item.name)
            record[item.name] = (
                list(value) if isinstance(value, tuple) else dict(value) if isinstance(value, Mapping) else value
            )
    return record


class JsonLinesLog:
    """An observer writing each event as one JSON line to a text stream."""

    def __init__(self, stream: IO[str], flush_each: bool = False) -> None:
        self._stream = stream
        self._flush_each = flush_each
        self._clock_offset = time.time() - time.monotonic()

    def __call__(self, event: Event) -> None:
        if isinstance(event, TaskFinished):  # the result as the spool encoded it: not encoded twice
            self._stream.write(self._finished(event.at, event.result.json))
        elif isinstance(event, TasksNotRun):  # in the log as what they stand for: one task_finished each
            self._stream.write("".join(self._finished(event.at, task.json()) for task in event.tasks))
        elif isinstance(event, Tick):  # a clock's tick: nothing to record
            return
        else:
            self._stream.write(json.dumps(event_record(event, self._clock_offset), ensure_ascii=False) + "\n")
        if self._flush_each:
            self._stream.flush()

    def _finished(self, at: float, result: str) -> str:
        return f'{{"event": "task_finished", "ts": {round(at + self._clock_offset, 6)}, "result": {result}}}\n'

    def close(self) -> None:
        self._stream.flush()
