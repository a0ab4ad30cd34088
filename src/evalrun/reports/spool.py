"""Finished cases on disk, so memory stays flat in the number of cases.

Case records are spooled to a temporary JSON-lines file as they finish; the report files are
written by streaming the spool once the run ends, whatever way it ended.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from ..events import Event, TaskFinished, TasksNotRun
from ..schema import CaseResult
from .files import UNWRITABLE

__all__ = ["CaseSpool"]


class CaseSpool:
    """Case records, one JSON line each, in the order they finished; an observer of the run."""

    def __init__(self) -> None:
        self._file: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8", errors=UNWRITABLE, prefix="evalrun-cases-")
        self.count = 0
        self._reading = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, TaskFinished):
            self.add(event.result)
        elif isinstance(event, TasksNotRun):
            self._write([task.json() for task in event.tasks])

    def add(self, result: CaseResult) -> None:
        self._write([result.json])

    def add_records(self, records: list[str]) -> None:
        """Case records that are JSON already (shards' results, recombined by ``evalrun merge``)."""
        self._write(records)

    def _write(self, records: list[str]) -> None:
        if self._reading:  # a reader may have left the position mid-file
            self._file.seek(0, os.SEEK_END)
            self._reading = False
        self._file.write("\n".join(records) + "\n")
        self.count += len(records)

    def lines(self) -> Iterator[str]:
        """Every record as its JSON text (without the newline): what results.json copies as is."""
        self._file.flush()
        self._file.seek(0)
        self._reading = True
        for line in self._file:
            yield line[:-1]

    def records(self) -> Iterator[dict[str, Any]]:
        return map(json.loads, self.lines())

    def close(self) -> None:
        self._file.close()
