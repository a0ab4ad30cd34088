"""``evalrun validate SUITE...``: check suites without calling any model."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import user_errors


def validate_command(
    suites: Annotated[list[str], typer.Argument(help="Suite files (.jsonl, .yaml, .csv).")],
    default_assert: Annotated[
        str | None,
        typer.Option(help="Assertion implied by a bare 'expected' (default: config.toml's, else equals)."),
    ] = None,
    config: Annotated[str | None, typer.Option(help="Config file (default: ./config.toml).")] = None,
) -> None:
    """Check suites: every problem as file:line, exit 2 if any."""
    from collections import Counter

    from ..progress import counted
    from ..settings import load_settings
    from ..suite import Case, plan_suites

    assertions: Counter[str] = Counter()

    def tally(case: Case) -> None:  # streamed: a suite of millions of cases is never held
        assertions.update(a.name for a in case.assertions)

    with user_errors():
        # The layers a run reads (config file, EVALRUN_*, flags), checked as a run checks them:
        # a suite valid here is read the same way by `evalrun eval`.
        settings = load_settings(config, default_assert=default_assert)
        plan = plan_suites(suites, settings.default_assert, each=tally)
    categories = plan.categories
    typer.echo(
        f"ok: {counted(plan.total, 'case')} in {len(categories)} {'category' if len(categories) == 1 else 'categories'} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(categories.items()))})"
    )
    typer.echo(f"assertions: {', '.join(f'{k} {v}' for k, v in sorted(assertions.items()))}")
