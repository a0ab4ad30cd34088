"""``evalrun validate SUITE...``: check suites without calling any model."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import user_errors


def validate_command(
    suites: Annotated[list[str], typer.Argument(help="Suite files (.jsonl, .yaml, .csv).")],
    default_assert: Annotated[str, typer.Option(help="Assertion implied by a bare 'expected'.")] = "equals",
) -> None:
    """Check suites: every problem as file:line, exit 2 if any."""
    from collections import Counter

    from ..progress import counted
    from ..suite import Case, plan_suites

    assertions: Counter[str] = Counter()

    def tally(case: Case) -> None:  # streamed: a suite of millions of cases is never held
        assertions.update(a.name for a in case.assertions)

    with user_errors():
        plan = plan_suites(suites, default_assert, each=tally)
    categories = plan.categories
    typer.echo(
        f"ok: {counted(plan.total, 'case')} in {len(categories)} {'category' if len(categories) == 1 else 'categories'} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(categories.items()))})"
    )
    typer.echo(f"assertions: {', '.join(f'{k} {v}' for k, v in sorted(assertions.items()))}")
