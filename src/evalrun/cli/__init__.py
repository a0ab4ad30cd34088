"""The command line: one module per command, each a thin shell over the library."""

from __future__ import annotations

import io
import sys
from typing import Annotated

import typer

from ..reports.files import UNWRITABLE
from . import (
    bench_cmd,
    cache_cmd,
    diff_cmd,
    eval_cmd,
    init_cmd,
    merge_cmd,
    providers_cmd,
    report_cmd,
    runs_cmd,
    serve_cmd,
    sim_cmd,
    test_cmd,
    validate_cmd,
)
from ._common import fail

app = typer.Typer(
    name="evalrun",
    help="Fast, cached, observable LLM evaluation runs, on the laptop and in CI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        from .. import __version__

        print(f"evalrun {__version__}")
        raise typer.Exit()


@app.callback()
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


app.command("eval")(eval_cmd.eval_command)
app.command("test", context_settings=test_cmd.CONTEXT)(test_cmd.test_command)
app.command("bench")(bench_cmd.bench_command)
app.command("validate")(validate_cmd.validate_command)
app.command("providers")(providers_cmd.providers_command)
app.command("sim")(sim_cmd.sim_command)
app.command("init")(init_cmd.init_command)
app.command("serve")(serve_cmd.serve_command)
app.command("diff")(diff_cmd.diff_command)
app.command("report")(report_cmd.report_command)
app.command("merge")(merge_cmd.merge_command)
app.add_typer(cache_cmd.app, name="cache")
app.add_typer(runs_cmd.app, name="runs")


def main() -> None:
    # A model's answer or a test id may hold a lone surrogate, which strict UTF-8 cannot write:
    # escape it, as stderr does (in a JSON line, the escape reads back as the same character).
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors=UNWRITABLE)
    app()
