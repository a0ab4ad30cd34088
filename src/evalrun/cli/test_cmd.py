"""``evalrun test [PYTEST_ARGS...]``: the project's pytest suite with live progress and a timeout."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ._common import user_errors

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def test_command(
    ctx: typer.Context,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds for the whole run (default 300; 0: none): SIGINT, then SIGTERM/SIGKILL (exit 124)."),
    ] = None,
    grace: Annotated[
        float | None,
        typer.Option(
            help="Seconds between SIGINT and SIGTERM when stopping, and between SIGTERM and SIGKILL for processes pytest leaves behind."
        ),
    ] = None,
    parallel: Annotated[str | None, typer.Option(help="N or auto: run with pytest-xdist (-n).")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write results JSON here.")] = None,
    junit: Annotated[str | None, typer.Option(help="Write JUnit XML here.")] = None,
    events: Annotated[str | None, typer.Option(help="Write every event as JSON lines here.")] = None,
    cache: Annotated[
        bool | None, typer.Option("--cache/--no-cache", help="Replay the last result when nothing changed.")
    ] = None,
    progress: Annotated[str | None, typer.Option(help="auto | rich | plain | json | none")] = None,
    python: Annotated[str | None, typer.Option(help="Interpreter of the project under test.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show pytest's own output live.")] = False,
) -> None:
    """Run pytest with live progress, stage timings, a global timeout and CI results.
    Arguments after -- (or unknown to evalrun) go to pytest. Exit: pytest's own code, 124 timeout,
    125 pytest died, 130 interrupted, 2 bad usage."""
    from ..display import make_display, resolve_mode
    from ..display.tests_plain import print_test_summary
    from ..schema import RunKind
    from ..settings import load_test_settings
    from ..testrun.runner import TestRunner

    with user_errors():
        settings = load_test_settings(
            pytest_args=tuple(ctx.args),
            timeout=timeout,
            grace=grace,
            parallel=parallel,
            output=output,
            junit=junit,
            events=events,
            cache=cache,
            python=python,
            verbose=verbose or None,
            progress=progress,
        )
        mode = resolve_mode(settings.progress, sys.stderr)
        display = make_display("plain" if verbose and mode == "rich" else mode, RunKind.TEST)
        try:
            result = TestRunner(settings).subscribe(display).run(handle_signals=True)
        finally:
            display.close()
    if mode != "json":
        print_test_summary(result.progress, str(result.log_path or ""), sys.stdout)
    raise typer.Exit(result.exit_code)
