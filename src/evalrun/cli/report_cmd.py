"""``evalrun report RESULTS.json -o report.html``: a run as one self-contained page (the work is in ``pages/``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import fail, user_errors


def report_command(
    results: Annotated[str, typer.Argument(help="A run's results.json (evalrun eval --output).")],
    output: Annotated[str, typer.Option("--output", "-o", help="The HTML file to write.")] = "report.html",
    events: Annotated[str | None, typer.Option(help="The run's --events log: charts of its pace.")] = None,
) -> None:
    """Write a run's detail view as one HTML file: summary, charts, every case; no network needed to open it."""
    from ..compare import load_results
    from ..pages.render import chart_events, render_report
    from ..reports.files import atomic_write

    with user_errors():
        page = render_report(load_results(results), events=chart_events(events) if events else ())
    try:
        atomic_write(output, lambda handle: handle.write(page))
    except OSError as exc:
        raise fail([f"{output}: {exc.strerror or exc}"]) from None
    typer.echo(f"report written: {output} ({len(page.encode()) / 1024:,.0f} KB)")
