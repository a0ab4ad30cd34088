"""What the commands share: turning library errors into one line each and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from ..exitcodes import ExitCode


def fail(lines: list[str], code: ExitCode = ExitCode.USAGE) -> typer.Exit:
    for line in lines:
        print(f"evalrun: {line}" if not line.startswith("evalrun:") else line, file=sys.stderr)
    return typer.Exit(int(code))


@contextmanager
def user_errors() -> Iterator[None]:
    """Settings and suite errors become clean lines and exit 2, never a traceback."""
    from ..errors import ConfigError, SuiteError

    try:
        yield
    except SuiteError as exc:
        raise fail(exc.problems) from None
    except ConfigError as exc:
        # One line whatever a name in it holds: a quoted TOML key may hold a line break.
        raise fail([str(exc).replace("\r", "\\r").replace("\n", "\\n")]) from None
