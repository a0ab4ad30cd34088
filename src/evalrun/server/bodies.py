"""What the server's POST endpoints take, and how a body becomes a run's settings.

A body says what the command line's flags say, under the settings' own names, and goes through the
same loader (``load_settings``, ``load_test_settings``), so that a value the CLI refuses the server
refuses too, in the same words: a ``ConfigError`` naming ``--concurrency`` becomes a 422 naming the
body's ``concurrency``. Suites are read only under the server's root; inline cases are written into
the run's own folder and read back as a suite, so they are checked as any suite is.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError
from ..settings import Settings, TestSettings, load_settings, load_test_settings

__all__ = ["EvalBody", "FieldError", "TestBody", "safe_path", "settings_for_eval", "settings_for_tests", "suite_error"]


class EvalBody(BaseModel):
    """``POST /api/results/run-evaluations``: an eval run, as the flags of ``evalrun eval`` say it."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = Field(None, description="Provider profile (config.toml or built in); default sim.")
    suites: list[str] = Field(default_factory=list, description="Suite files, relative to the server's folder.")
    cases: list[dict[str, Any]] | None = Field(None, description="Inline cases, each as a suite line says it.")
    models: list[str] = Field(default_factory=list)
    concurrency: int | None = None
    repeat: int | None = None
    categories: list[str] = Field(default_factory=list)
    filter: str | None = None
    limit: int | None = None
    timeout: float | None = None
    min_pass_rate: float | None = None
    max_errors: int | None = None
    retries: int | None = None
    rpm: int | None = None
    tpm: int | None = None


class TestBody(BaseModel):
    """``POST /api/results/run-tests``: a pytest run, as the flags of ``evalrun test`` say it."""

    __test__ = False  # not a pytest test class, whatever its name
    model_config = ConfigDict(extra="forbid")

    pytest_args: list[str] = Field(default_factory=list, description="Arguments for pytest (paths under the root).")
    timeout: float | None = Field(None, description="Seconds for the whole run; 0 for none (default 300).")
    parallel: str | None = Field(None, description="pytest-xdist workers: a number or 'auto'.")


class FieldError(ValueError):
    """A body's value refused: the field it came in, and why (a 422 names both)."""

    def __init__(self, field: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.field = tuple(field)
        self.message = message


_FLAG = re.compile(r"^--([a-z-]+): (.*)$", re.S)
_SUITE_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+): (?P<why>.*)$", re.S)


def _refused(exc: ConfigError) -> FieldError:
    """A loader's error as the body's: ``--min-pass-rate: ...`` names ``min_pass_rate``."""
    text = str(exc)
    match = _FLAG.match(text)
    if match:
        return FieldError(("body", match.group(1).replace("-", "_")), match.group(2))
    return FieldError(("body",), text)


def safe_path(root: Path, given: str, field: Sequence[str | int]) -> str:
    """``given`` as a path under ``root``, or ``FieldError``: no absolute path outside it, no ``..``,
    no symbolic link out of it."""
    if "\x00" in given:
        raise FieldError(field, "a path cannot hold a NUL character")
    path = Path(given)
    if ".." in path.parts:
        raise FieldError(field, f"'{given}': paths may not use '..'")
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise FieldError(field, f"'{given}' is outside the server's folder")
    return str(resolved)


def settings_for_eval(
    body: EvalBody, root: Path, config: str | None, inline_folder: Path, history_dir: Path
) -> Settings:
    """The run's settings from ``body``: suites under ``root``, inline cases written into
    ``inline_folder`` as ``cases.jsonl``, the cache (when config.toml names it relatively) and
    the history under ``root`` whatever the process's working directory."""
    suites = [safe_path(root, suite, ("body", "suites", i)) for i, suite in enumerate(body.suites)]
    if body.cases is not None:
        if not body.cases:
            raise FieldError(("body", "cases"), "no case given")
        suites.append(_write_cases(body.cases, inline_folder))
    flags: dict[str, Any] = {
        "provider": body.provider,
        "suites": tuple(suites),
        "models": tuple(body.models),
        "concurrency": body.concurrency,
        "repeat": body.repeat,
        "categories": tuple(body.categories),
        "filter": body.filter,
        "limit": body.limit,
        "timeout": body.timeout,
        "min_pass_rate": body.min_pass_rate,
        "max_errors": body.max_errors,
        "retries": body.retries,
        "rpm": body.rpm,
        "tpm": body.tpm,
        "progress": "none",
    }
    try:
        settings = load_settings(config, **flags)
    except ConfigError as exc:
        raise _refused(exc) from None
    return replace(settings, cache_dir=str(root / settings.cache_dir), history_dir=str(history_dir))


def _write_cases(cases: Sequence[Mapping[str, Any]], folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cases.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for case in cases:
            handle.write(json.dumps(case) + "\n")  # ASCII: a lone surrogate travels as an escape
    return str(path)


def suite_error(text: str, inline: str | None) -> FieldError:
    """A suite's ``file:line: why`` as the body's field: the line of inline cases is the case's index."""
    match = _SUITE_LINE.match(text)
    if match and inline is not None and os.path.samefile(match.group("path"), inline):
        return FieldError(("body", "cases", int(match.group("line")) - 1), match.group("why"))
    return FieldError(("body", "suites"), text)


#: pytest options a request may give: what selects and reports tests. Anything else is refused:
#: ``--junitxml=/etc/...``, ``--rootdir``, ``-c``, ``-p`` and their like write files or load code
#: where a request must not reach.
_SAFE_FLAGS = frozenset({"-x", "--exitfirst", "-q", "--quiet", "-v", "--verbose", "-l", "--lf", "--ff", "--sw"})
_SAFE_WITH_VALUE = frozenset({"-k", "-m", "--maxfail", "--tb", "-r", "--durations"})


def _pytest_args(args: Sequence[str], root: Path) -> list[str]:
    """``args`` checked: test paths under ``root``, and only options that select or report."""
    checked, expecting_value = [], False
    for i, arg in enumerate(args):
        field = ("body", "pytest_args", i)
        if expecting_value:
            expecting_value = False
        elif arg.startswith("-"):
            name = arg.split("=", 1)[0]
            if name in _SAFE_WITH_VALUE:
                expecting_value = "=" not in arg and name == arg
            elif name not in _SAFE_FLAGS:
                allowed = ", ".join(sorted(_SAFE_FLAGS | _SAFE_WITH_VALUE))
                raise FieldError(field, f"'{name}' is not an option a request may give (allowed: {allowed})")
        else:
            safe_path(root, arg.split("::")[0], field)
        checked.append(arg)
    return checked


def settings_for_tests(body: TestBody, root: Path, history_dir: Path) -> TestSettings:
    """The test run's settings from ``body``: pytest runs in ``root``; path arguments stay under it,
    and only options that select or report tests are taken."""
    flags: dict[str, Any] = {
        "pytest_args": tuple(_pytest_args(body.pytest_args, root)),
        "timeout": body.timeout,
        "parallel": body.parallel,
        "workdir": str(root),
        "history_dir": str(history_dir),
        "progress": "none",
    }
    try:
        return load_test_settings(**flags)
    except ConfigError as exc:
        raise _refused(exc) from None
