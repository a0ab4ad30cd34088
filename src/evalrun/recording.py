"""A run's entry in the run history (``history.py``): begun, its files kept, finished.

Every run is recorded, from the command line or a server, so that ``evalrun runs`` and the
server's ``/api/runs`` list them all. The history is a record, not the run: one that cannot be
written (a read-only folder, a damaged index) costs one warning, and the run and its reports go
on without it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .history import HistoryUnavailable, RunHistory

__all__ = ["OVERVIEW_FILE", "RESULTS_FILE", "RunRecord"]

RESULTS_FILE = "results.json"
EVENTS_FILE = "events.jsonl"
OVERVIEW_FILE = "run.json"  # settings and summary: what a run's page shows without reading every case


class RunRecord:
    """One run in the history under ``history_dir`` (``""``: not recorded at all)."""

    def __init__(
        self,
        history_dir: str,
        run_id: str,
        kind: str,
        *,
        origin: str,
        request: Mapping[str, Any],
        session_id: str | None,
        warn: Callable[[str], None],
    ) -> None:
        self._history = RunHistory(history_dir) if history_dir else None
        self._run_id, self._kind = run_id, kind
        self._origin, self._request, self._session_id = origin, request, session_id
        self._warn = warn
        self._folder: Path | None = None

    def begin(self, provider: str, models: Sequence[str], suites: Sequence[str], total: int) -> None:
        if self._history is None:
            return
        try:
            self._folder = self._history.begin(
                self._run_id,
                self._kind,
                origin=self._origin,
                request=self._request,
                provider=provider,
                models=models,
                suites=suites,
                total=total,
                session_id=self._session_id,
            )
        except (HistoryUnavailable, OSError) as exc:
            self._gone(exc)

    def events_path(self, asked: str | None) -> str | None:
        """Where the run's event log is written: where the user asked (copied into the history at
        the end), else into the history directly."""
        if asked or self._folder is None:
            return asked
        return str(self._folder / EVENTS_FILE)

    def results_path(self, asked: str | None) -> str | None:
        """The same for results.json."""
        if asked or self._folder is None:
            return asked
        return str(self._folder / RESULTS_FILE)

    def finish(
        self,
        *,
        state: str,
        exit_code: int,
        summary: Mapping[str, Any],
        message: str,
        overview: Mapping[str, Any],
        results: str | None,
        events: str | None,
    ) -> None:
        """The run's end: its overview (``settings`` and the results' whole ``summary``), and
        copies of the files the user asked for elsewhere. ``summary`` is the index's share of it."""
        if self._history is None or self._folder is None:
            return
        try:
            for asked, name in ((results, RESULTS_FILE), (events, EVENTS_FILE)):
                kept = self._folder / name
                if asked and os.path.isfile(asked) and not kept.exists():
                    shutil.copyfile(asked, kept)
            (self._folder / OVERVIEW_FILE).write_text(json.dumps(overview, ensure_ascii=False), encoding="utf-8")
            self._history.finish(self._run_id, state=state, exit_code=exit_code, summary=summary, message=message)
        except (HistoryUnavailable, OSError) as exc:
            self._gone(exc)

    def _gone(self, exc: Exception) -> None:
        self._warn(f"run history {self._history.root if self._history else ''}: {exc}; this run is not recorded")
        self._history, self._folder = None, None
