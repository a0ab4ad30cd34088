"""Exit codes (DESIGN §6): what a CI step can act on."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Any

__all__ = ["ExitCode", "for_run"]


class ExitCode(IntEnum):
    OK = 0
    BELOW_THRESHOLD = 1
    USAGE = 2
    PROVIDER_ERRORS = 3
    TIMEOUT = 124
    INTERRUPTED = 130


def for_run(state: str, summary: Mapping[str, Any], min_pass_rate: float, max_errors: int) -> ExitCode:
    """The code a finished run exits with; an interrupted or timed-out run says so first."""
    if state == "interrupted":
        return ExitCode.INTERRUPTED
    if state == "timeout":
        return ExitCode.TIMEOUT
    if summary["errors"] > max_errors:
        return ExitCode.PROVIDER_ERRORS
    if summary["pass_rate"] < min_pass_rate - 1e-12:
        return ExitCode.BELOW_THRESHOLD
    return ExitCode.OK
