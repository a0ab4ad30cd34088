"""Exit codes: what a CI step can act on (the README's table is the user's copy of this one).

Import-free, as every command imports it to fail cleanly."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    OK = 0
    BELOW_THRESHOLD = 1  # eval: pass rate under --min-pass-rate (test: pytest's own codes pass through)
    USAGE = 2  # bad usage, config or suite, found before any request
    PROVIDER_ERRORS = 3  # eval: more provider errors than --max-errors
    TIMEOUT = 124  # --timeout reached (the code of coreutils' timeout)
    CRASHED = 125  # test: pytest died without finishing
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM, what CI sends to a cancelled job (128 + SIGTERM)
