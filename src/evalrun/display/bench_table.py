"""The ``evalrun bench`` table: rich on a terminal, plain ASCII columns elsewhere."""

from __future__ import annotations

from typing import IO

from rich import box
from rich.console import Console
from rich.table import Table

from ..bench import BenchReport

__all__ = ["print_bench"]


def print_bench(report: BenchReport, stream: IO[str] | None = None) -> None:
    console = Console(file=stream)
    plain = not console.is_terminal
    if plain:  # CI logs are wide; 80 columns would fold every row
        console = Console(file=stream, width=120)
    table = Table(
        title=f"evalrun bench: {report.cases} cases, {report.latency_ms:g} ms latency, "
        f"medians of {report.settings.repeats}",
        title_justify="left",
        box=box.ASCII2 if plain else box.HEAVY_HEAD,
    )
    for column in ("mode", "conc.", "wall", "cases/s", "speed-up", "efficiency", "cache hits", "peak RSS"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for row in report.rows:
        table.add_row(
            row.mode,
            str(row.concurrency),
            f"{row.wall_seconds:.3f} s",
            f"{row.cases_per_second:,.0f}",
            f"{row.speedup:.1f}x",
            f"{row.efficiency:.0%}" if row.efficiency is not None else "-",
            f"{row.cache_hits:,}",
            f"{row.peak_rss_mb:.0f} MB" if row.peak_rss_mb is not None else "-",
        )
    console.print(table)
    console.print(report.verdict, soft_wrap=True)
