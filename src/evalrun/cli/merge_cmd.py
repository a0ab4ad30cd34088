"""``evalrun merge A.json B.json ... -o all.json``: shards recombined (the work is in ``merge.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import fail, user_errors


def merge_command(
    results: Annotated[list[str], typer.Argument(help="The shards' results.json files.")],
    output: Annotated[str, typer.Option("--output", "-o", help="The merged results.json.")] = "results.json",
    junit: Annotated[str | None, typer.Option(help="Also the merged JUnit XML here.")] = None,
    summary_md: Annotated[str | None, typer.Option(help="Also the merged Markdown summary here.")] = None,
) -> None:
    """Recombine the results of --shard runs into the one results file a single run would have written;
    exit with the code that run would have had (0, 1 below --min-pass-rate, 3 errors, 124, 130)."""
    from ..compare import load_results
    from ..merge import case_lines, merge_results
    from ..progress import counted
    from ..reports import CaseSpool, write_reports

    with user_errors():
        merged = merge_results([load_results(path) for path in results], results)
    spool = CaseSpool()
    spool.add_records(case_lines(merged))
    run = merged["run"]
    try:
        write_reports(spool, run, merged["summary"], output=output, junit=junit, summary_md=summary_md,
                      state=run["state"], exit_code=run["exit_code"])  # fmt: skip
    except OSError as exc:
        raise fail([f"{exc.filename or output}: {exc.strerror or exc}"]) from None
    finally:
        spool.close()
    summary = merged["summary"]
    typer.echo(
        f"merged {len(results)} results: {counted(summary['total'], 'case')}, pass rate {summary['pass_rate']:.1%}; "
        f"written: {', '.join(path for path in (output, junit, summary_md) if path)}"
    )
    typer.echo(f"evalrun: {run['exit_reason']}")
    raise typer.Exit(run["exit_code"])  # the merged run's verdict: the CI gate of a sharded run
