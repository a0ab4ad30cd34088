"""evalrun's pytest plugin: one JSON line per event, for a parent process to tail.

Loaded with ``-p evalrun.testrun.plugin``; active only when ``EVALRUN_PYTEST_PLUGIN_EVENTS`` names a file.
Standard library and pytest only. Every line is written and flushed at once, so a parent sees the
test that is running even if the process is later killed, and no error here ever reaches pytest.

Events (``event`` key), each with ``t`` (Unix seconds):

- ``session_start``: ``pid``
- ``collection_finished``: ``count``, ``ids`` (also under pytest-xdist, from the first worker)
- ``collect_error``: ``id``, ``message``
- ``test_started``: ``id``
- ``test_report``: ``id``, ``when``, ``outcome``, ``duration``, ``xfail`` (bool), ``message``;
  written for the call phase and for any phase that did not pass
- ``session_finished``: ``exit_status``
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import IO, Any

import pytest

EVENTS_VARIABLE = "EVALRUN_PYTEST_PLUGIN_EVENTS"
_MESSAGE_LIMIT = 2000


def _message(report: Any) -> str:
    if not report.longrepr:
        return ""
    crash: Any = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return str(crash.message)[:_MESSAGE_LIMIT]
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:  # skips: (path, line, reason)
        return str(report.longrepr[2])[:_MESSAGE_LIMIT]
    return str(report.longreprtext)[-_MESSAGE_LIMIT:]


class EventWriter:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._collected = False

    def _write(self, event: str, **fields: Any) -> None:
        try:
            self._stream.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
            self._stream.flush()
        except Exception:  # never break the test run for the sake of its report
            pass

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._write("session_start", pid=os.getpid())

    def _collection(self, ids: list[str]) -> None:
        if not self._collected:
            self._collected = True
            self._write("collection_finished", count=len(ids), ids=ids)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not session.config.pluginmanager.hasplugin("dsession"):  # xdist's controller collects nothing
            self._collection([item.nodeid for item in session.items])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._collection(list(ids))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._write("collect_error", id=report.nodeid, message=_message(report))

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self._write("test_started", id=nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.outcome == "passed":
            return
        self._write(
            "test_report",
            id=report.nodeid,
            when=report.when,
            outcome=report.outcome,
            duration=round(report.duration, 6),
            xfail=hasattr(report, "wasxfail"),
            message=_message(report) if report.outcome != "passed" else "",
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._write("session_finished", exit_status=int(exitstatus))


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get(EVENTS_VARIABLE)
    if not path or hasattr(config, "workerinput"):  # xdist workers report through the controller
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background: a timeout must reach us
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stream = open(path, "a", encoding="utf-8")
    except OSError:
        return
    config.pluginmanager.register(EventWriter(stream), "evalrun-events")
