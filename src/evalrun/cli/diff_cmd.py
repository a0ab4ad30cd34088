"""``evalrun diff OLD.json NEW.json``: regressions and fixes between two runs (the work is in ``compare.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..exitcodes import ExitCode
from ._common import user_errors


def diff_command(
    old: Annotated[str, typer.Argument(help="The earlier run's results.json.")],
    new: Annotated[str, typer.Argument(help="The later run's results.json.")],
    fail_on_regression: Annotated[
        bool, typer.Option("--fail-on-regression", help="Exit 1 when any case went from pass to fail or error.")
    ] = False,
) -> None:
    """Compare two runs: cases that regressed or were fixed, pass rate and latency per category and model."""
    from ..compare import compare, load_results
    from ..display.diff_tables import print_comparison

    with user_errors():
        comparison = compare(load_results(old), load_results(new))
    print_comparison(comparison)
    if fail_on_regression and comparison.regressions:
        typer.echo(f"evalrun: exit 1: {len(comparison.regressions)} regressed (--fail-on-regression)")
        raise typer.Exit(int(ExitCode.BELOW_THRESHOLD))
