"""Why a run exits with the code it does: the rule, the final state and the one line that says it.

Shared by a run (``runner.py``) and a merge of shards (``merge.py``), which must come to the verdict
one run with the same figures would have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .exitcodes import ExitCode
from .progress import counted
from .schema import RunState

__all__ = ["eval_exit_code", "exit_reason", "final_state"]


def eval_exit_code(state: RunState, errors: int, pass_rate: float, min_pass_rate: float, max_errors: int) -> ExitCode:
    """The code an eval run exits with; an interrupted or timed-out run says so first, and one the
    provider stopped (a refused key, a server out of reach) is a provider error whatever the count."""
    if state == RunState.INTERRUPTED:
        return ExitCode.INTERRUPTED
    if state == RunState.TIMEOUT:
        return ExitCode.TIMEOUT
    if errors > max_errors or state == RunState.ERROR:
        return ExitCode.PROVIDER_ERRORS
    if pass_rate < min_pass_rate - 1e-12:
        return ExitCode.BELOW_THRESHOLD
    return ExitCode.OK


def final_state(state: RunState, message: str, code: ExitCode, errors: int, max_errors: int) -> tuple[RunState, str]:
    """How the run ended, in the words of its exit code: a run that went to its end with more
    errors than allowed ended in ``error`` (exit 3), not ``completed``."""
    if code == ExitCode.PROVIDER_ERRORS and state == RunState.COMPLETED:
        return RunState.ERROR, f"{counted(errors, 'error')}, more than --max-errors {max_errors}"
    return state, message


def exit_reason(code: ExitCode, summary: Mapping[str, Any], message: str, min_pass_rate: float, max_errors: int) -> str:
    """Why a run exits with ``code``, in one line: the figure and the threshold it was held to."""
    rate, errors, not_run = summary["pass_rate"], summary["errors"], summary["not_run"]
    ran = summary["total"] - not_run
    left = f"; {counted(not_run, 'task')} not run" if not_run else ""
    if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED, ExitCode.TIMEOUT):
        return f"exit {int(code)}: {message or 'stopped'}{left}"
    if code == ExitCode.PROVIDER_ERRORS:
        why = message or f"{counted(errors, 'error')}, more than --max-errors {max_errors}"
        return f"exit 3: {why}{left}"
    if not summary["total"]:
        return "exit 0: no case to run (an empty shard)"
    over = f"the {counted(ran, 'case')} that ran" if not_run else f"all {counted(ran, 'case')}"
    if code == ExitCode.BELOW_THRESHOLD:
        return f"exit 1: pass rate {rate:.1%} of {over} is below --min-pass-rate {min_pass_rate:.1%}"
    return (
        f"exit 0: pass rate {rate:.1%} of {over} meets --min-pass-rate {min_pass_rate:.1%}, "
        f"{counted(errors, 'error')} (--max-errors {max_errors})"
    )
