"""Exit codes: what a CI step can act on (the README's table is the user's copy of this one)."""

from __future__ import annotations

from enum import IntEnum

from .schema import RunState

__all__ = ["ExitCode", "eval_exit_code"]


class ExitCode(IntEnum):
    OK = 0
    BELOW_THRESHOLD = 1  # eval: pass rate under --min-pass-rate (test: pytest's own codes pass through)
    USAGE = 2  # bad usage, config or suite, found before any request
    PROVIDER_ERRORS = 3  # eval: more provider errors than --max-errors
    TIMEOUT = 124  # --timeout reached (the code of coreutils' timeout)
    CRASHED = 125  # test: pytest died without finishing
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


def eval_exit_code(state: RunState, errors: int, pass_rate: float, min_pass_rate: float, max_errors: int) -> ExitCode:
    """The code an eval run exits with; an interrupted or timed-out run says so first."""
    if state == RunState.INTERRUPTED:
        return ExitCode.INTERRUPTED
    if state == RunState.TIMEOUT:
        return ExitCode.TIMEOUT
    if errors > max_errors:
        return ExitCode.PROVIDER_ERRORS
    if pass_rate < min_pass_rate - 1e-12:
        return ExitCode.BELOW_THRESHOLD
    return ExitCode.OK
