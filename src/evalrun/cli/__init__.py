"""The command line: one module per command, each a thin shell over the library.

A run names one command; only that command's module is imported and only its options are built
(typer builds every command's options before it dispatches: 20 ms of start-up for thirteen).
``evalrun --help``, and anything that is not a command's name, gets the whole app.
"""

from __future__ import annotations

import functools
import importlib
import io
import sys
from typing import Annotated, Any

import typer

from ..reports.files import UNWRITABLE
from ._common import fail

#: Each command's module and what in it is the command (a function, or a typer app of subcommands).
COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("eval_cmd", "eval_command"),
    "test": ("test_cmd", "test_command"),
    "bench": ("bench_cmd", "bench_command"),
    "validate": ("validate_cmd", "validate_command"),
    "providers": ("providers_cmd", "providers_command"),
    "sim": ("sim_cmd", "sim_command"),
    "init": ("init_cmd", "init_command"),
    "serve": ("serve_cmd", "serve_command"),
    "diff": ("diff_cmd", "diff_command"),
    "report": ("report_cmd", "report_command"),
    "merge": ("merge_cmd", "merge_command"),
    "cache": ("cache_cmd", "app"),
    "runs": ("runs_cmd", "app"),
}


def _print_version(asked: bool) -> None:
    if asked:
        from .. import __version__

        print(f"evalrun {__version__}")
        raise typer.Exit()


def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level", envvar="EVALRUN_LOG_LEVEL", help="Show evalrun's log on stderr: debug, info, warning, error."
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="-v: --log-level info; -vv: debug.")] = 0,
) -> None:
    """Fast, cached, observable LLM evaluation runs, on the laptop and in CI."""
    if verbose and not log_level:
        log_level = "debug" if verbose > 1 else "info"
    if log_level:
        from ..logs import LEVELS, log_to_stderr

        if log_level.lower() not in LEVELS:
            raise fail([f"--log-level/EVALRUN_LOG_LEVEL: '{log_level}' is not one of {', '.join(LEVELS)}"])
        log_to_stderr(log_level)


def build_app(only: str | None = None) -> typer.Typer:
    """The app with every command, or with ``only`` that one."""
    app = typer.Typer(
        name="evalrun",
        help="Fast, cached, observable LLM evaluation runs, on the laptop and in CI.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_options)
    for name, (module_name, attribute) in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f".{module_name}", __name__)
        command = getattr(module, attribute)
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name)
        else:
            app.command(name, context_settings=getattr(module, "CONTEXT", None))(command)
    return app


@functools.cache
def _whole_app() -> typer.Typer:
    return build_app()


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole app, for programs and tests that drive it (typer's CliRunner)
        return _whole_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _command_named(args: list[str]) -> str | None:
    """The command an argument list names: its first word that is not an option of the app's own."""
    arguments = iter(args)
    for argument in arguments:
        if argument == "--log-level":
            next(arguments, None)
        elif not argument.startswith("-"):
            return argument
    return None


def main() -> None:
    # A model's answer or a test id may hold a lone surrogate, which strict UTF-8 cannot write:
    # escape it, as stderr does (in a JSON line, the escape reads back as the same character).
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors=UNWRITABLE)
    named = _command_named(sys.argv[1:])
    build_app(named if named in COMMANDS else None)()
