"""The errors of bad input, kept import-free so that any layer (and the CLI) can name them cheaply."""

from __future__ import annotations

__all__ = ["ConfigError", "SuiteError"]


class ConfigError(Exception):
    """A setting is wrong; the message is one line naming where it came from."""


class SuiteError(Exception):
    """A suite could not be loaded; ``problems`` holds one ``file:line: message`` per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
