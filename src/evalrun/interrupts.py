"""Stopping before the run can watch for it: Ctrl-C, SIGTERM and the run's timeout while the
suites are still being read and checked.

A run watches SIGINT and SIGTERM itself once it runs (``Runner.run(handle_signals=True)``). Before
that, reading a million-case suite takes seconds, and a signal must stop it too: Python turns
SIGINT into ``KeyboardInterrupt`` only when its parent did not ignore the signal (a shell's
background job does), and SIGTERM, what CI sends to a cancelled job, would kill the process
without a word. Within ``stops_on_signals``, each raises ``Stopped`` instead, and so does the
run's ``--timeout`` (a SIGALRM timer), since the check counts against it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .exitcodes import ExitCode

__all__ = ["Stopped", "exit_code_of_signal", "stops_on_signals"]


class Stopped(BaseException):
    """A signal or the timeout stopped the work (a ``BaseException``, as ``KeyboardInterrupt``:
    no ``except Exception`` on the way may swallow it)."""

    def __init__(self, code: ExitCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def exit_code_of_signal(signum: int) -> ExitCode:
    """130 for Ctrl-C, 143 for SIGTERM: 128 + the signal, as a shell reports a process it killed."""
    return ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.INTERRUPTED


def _stop(signum: int, frame: FrameType | None) -> None:
    if signum == getattr(signal, "SIGALRM", None):
        raise Stopped(ExitCode.TIMEOUT, "the run's timeout was reached while checking the suites")
    raise Stopped(exit_code_of_signal(signum), f"{signal.Signals(signum).name} before the run started")


@contextmanager
def stops_on_signals(timeout: float | None = None) -> Iterator[None]:
    """Within: SIGINT and SIGTERM raise ``Stopped``, and so does ``timeout`` seconds passing.
    Signals can only be handled on the main thread: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _stop) for number in (signal.SIGINT, signal.SIGTERM)}
    timed = timeout is not None and hasattr(signal, "setitimer")
    if timed:
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, _stop)
        signal.setitimer(signal.ITIMER_REAL, max(timeout or 0.0, 0.001))
    try:
        yield
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for number, handler in previous.items():
            signal.signal(number, handler)
