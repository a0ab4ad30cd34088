"""The errors of bad input, kept import-free so that any layer (and the CLI) can name them cheaply."""

from __future__ import annotations

import re

__all__ = ["ConfigError", "SuiteError", "printable_line"]

_CONTROL = re.compile("[\x00-\x1f\x7f]")


def printable_line(text: str) -> str:
    """``text`` as one printable line, whatever the user's text quoted in it holds (a key, an id
    or a file name may hold a line break, a terminal escape or a lone surrogate): each such
    character is written as its escape."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


class ConfigError(Exception):
    """A setting is wrong; the message is one line naming where it came from."""


class SuiteError(Exception):
    """A suite could not be loaded; ``problems`` holds one ``file:line: message`` per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
