"""The final metrics tables of an eval run, printed once it has ended (plain when not on a terminal)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING

from ..metrics import Counts
from ..schema import Summary

if TYPE_CHECKING:
    from rich.table import Table

    from ..runner import RunResult
    from ..settings import Settings

__all__ = ["print_outcome", "print_summary"]


def _overall(summary: Summary) -> Table:
    from rich.table import Table  # imported when printed: a quiet run (--progress none) never loads rich

    s = summary
    table = Table(title="Overall", title_justify="left", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    ran = s["total"] - s["not_run"]
    answered = ran - s["errors"]
    all_cached = answered > 0 and s["cache_hits"] == answered
    concurrency = f"avg {s['avg_concurrency']:.1f}, peak {s['peak_concurrency']}"
    if not ran:
        pass_rate = "- (no case ran)"
    else:
        pass_rate = f"{s['pass_rate']:.1%}" + (f" of the {ran:,} that ran" if s["not_run"] else "")
    latency = f"p50 {s['latency_ms']['p50']:.0f} ms, p95 {s['latency_ms']['p95']:.0f} ms"
    rows = [
        ("pass rate", pass_rate),
        (
            "cases",
            f"{s['total']:,} ({s['passed']:,} passed, {s['failed']:,} failed, {s['errors']:,} errors, "
            f"{s['not_run']:,} not run)",
        ),
        ("wall time", f"{s['wall_seconds']:.2f} s"),
        ("cases per second", f"{s['cases_per_second']:,.1f}"),
        ("cache hits", f"{s['cache_hits']:,} ({s['cache_efficiency']:.1%} efficiency)"),
        ("concurrency", "none: all cached" if all_cached else concurrency),
        ("retries", f"{s['retries']:,}"),
        (
            "latency",
            "- (no answer)"
            if not answered
            else latency + (" (of the original calls: all cached)" if all_cached else ""),
        ),
        ("tokens", f"{s['tokens']['prompt']:,} prompt + {s['tokens']['completion']:,} completion"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _breakdown(title: str, rows: Mapping[str, Counts]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    not_run = any(counts.done < counts.total for counts in rows.values())
    columns = (
        title.split()[-1],
        "cases",
        "passed",
        "failed",
        "errors",
        *(("not run",) if not_run else ()),
        "pass rate",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right")
    for name, counts in sorted(rows.items()):
        table.add_row(
            Text(name),  # a category is the user's text, never rich markup
            str(counts.total),
            str(counts.passed),
            str(counts.failed),
            str(counts.errors),
            *((str(counts.total - counts.done),) if not_run else ()),
            f"{counts.pass_rate:.1%}" if counts.done else "-",
        )
    return table


def print_summary(
    summary: Summary,
    by_category: Mapping[str, Counts],
    by_model: Mapping[str, Counts],
    stream: IO[str] | None = None,
) -> None:
    from rich.console import Console

    console = Console(file=stream)
    console.print(_overall(summary))
    console.print(_breakdown("By category", by_category))
    if len(by_model) > 1:
        console.print(_breakdown("By model", by_model))


def print_outcome(result: RunResult, settings: Settings) -> None:
    """What the command prints once the run is over: the tables, what went wrong and why the exit
    code is what it is on stdout; with ``--progress json`` one last JSON line; with ``none``
    only what went wrong, on stderr: the warnings the run survived (no display told them), and
    the reason of a run that did not pass."""
    if settings.progress == "json":
        print(json.dumps({"event": "summary", "exit_code": int(result.exit_code), **result.summary}))
        return
    if settings.progress == "none":
        for warning in result.summary["warnings"]:
            print(f"evalrun: warning: {warning}", file=sys.stderr)
        if result.exit_code:
            print(f"evalrun: {result.exit_reason}", file=sys.stderr)
        return
    print_summary(result.summary, result.metrics.by_category, result.metrics.by_model)
    summary = result.summary
    if summary["failed"] or summary["errors"]:
        from rich.console import Console

        from .eval_outcome import Trouble, trouble_tables

        where = f"in {settings.output}" if settings.output else "with --output results.json"
        # The cases are read again only for what the metrics did not keep: the failures.
        needed = summary["failed"] or settings.repeat > 1
        trouble = Trouble.of(result.cases()) if needed else Trouble()
        console = Console()
        for table in trouble_tables(trouble, result.metrics, where, settings.repeat):
            console.print(table)
    print(f"evalrun: {result.exit_reason}")
    s = settings
    written = [p for p in (s.output, s.junit, s.summary_md, s.html, s.events, s.metrics_file) if p]
    if written:
        print(f"results written: {', '.join(written)}", file=sys.stderr)
    if result.provider_stats is not None:
        served = result.provider_stats
        print(f"simulated provider: {served['requests']} requests served {served['by_status']}", file=sys.stderr)
