"""What the commands share: turning library errors into one line each and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from ..errors import printable_line
from ..exitcodes import ExitCode


def fail(lines: list[str], code: ExitCode = ExitCode.USAGE) -> typer.Exit:
    """Each line printed as one line, whatever it quotes (a key with a line break, an escape)."""
    for line in map(printable_line, lines):
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
        raise fail([str(exc)]) from None
